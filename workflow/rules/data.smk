# Data (paper 4.1, Appendices A-B; SPEC 2-3): the normalised test sets of every data set, the
# QAR training triples sampled from PAQ and the RIR data synthesized from Wikipedia. The work is
# in data_prep/; each script is a few lines of glue. Outputs (gear/layout.py):
#   L.corpus(ds), L.queries(ds), L.stats(ds)   for ds in squad, nq, triviaqa, paq, rir
#   L.beir_files(ds)                           the same test set in BEIR layout, same job
#   and the same for every BEIR set of data.beir (rule build_beir, data_prep/beir.py)
#   L.train_triples("qar"), L.train_triples("rir")
# Download rules exist only for the raw files whose URL the config names (config/paper.yaml);
# the mini config names none, so its runs never download.
import re

from data_prep.beir import beir_files

DATA = config["data"]
QA_SOURCES = ("squad", "nq", "triviaqa")
BEIR_SETS = DATA.get("beir", {})
RIR_WORK = L.rir_work()


# Each rule's params carry only what it reads, so unrelated config edits rerun nothing.
DATA_SHARED = {k: DATA[k] for k in ("splitter", "token_counter", "max_document_tokens")}
MODEL_PATHS = {
    role: {k: v for k, v in config["model_paths"].items() if k == name}
    for role, name in (
        ("tokenizer", DATA["token_counter"]),
        ("rewrite", DATA["rir"]["rewrite"]["model"]),
        ("filter", DATA["rir"]["filter"]["model"]),
    )
}


rule build_qa:
    input:
        source=lambda wildcards: DATA[wildcards.dataset]["path"],
        extra=lambda wildcards: [
            e["path"] for e in DATA[wildcards.dataset].get("extra_corpus", [])
        ],
    output:
        **L.beir_files("{dataset}"),
        corpus=L.corpus("{dataset}"),
        queries=L.queries("{dataset}"),
        stats=L.stats("{dataset}"),
    log:
        L.log("data", "build_{dataset}"),
    benchmark:
        L.benchmark("data", "build_{dataset}")
    wildcard_constraints:
        dataset="|".join(QA_SOURCES),
    conda:
        "../../environment.yml"
    params:
        data=lambda wildcards: {
            **DATA_SHARED,
            wildcards.dataset: DATA[wildcards.dataset],
        },
        model_paths=MODEL_PATHS["tokenizer"],
        allow_downloads=config["allow_downloads"],
    script:
        "../scripts/data_build_qa.py"


if BEIR_SETS:

    # Any BEIR folder named by the config (data.beir.beir-{name}) as a test set: retrieval only.
    rule build_beir:
        input:
            unpack(
                lambda wildcards: beir_files(
                    BEIR_SETS[wildcards.dataset]["path"],
                    BEIR_SETS[wildcards.dataset].get("split", "test"),
                )
            ),
        output:
            **L.beir_files("{dataset}"),
            corpus=L.corpus("{dataset}"),
            queries=L.queries("{dataset}"),
            stats=L.stats("{dataset}"),
        log:
            L.log("data", "build_{dataset}"),
        benchmark:
            L.benchmark("data", "build_{dataset}")
        wildcard_constraints:
            dataset="|".join(map(re.escape, BEIR_SETS)),
        conda:
            "../../environment.yml"
        params:
            data=DATA_SHARED,
            split=lambda wildcards: BEIR_SETS[wildcards.dataset].get("split", "test"),
            model_paths=MODEL_PATHS["tokenizer"],
            allow_downloads=config["allow_downloads"],
        script:
            "../scripts/data_build_beir.py"


rule build_paq:
    input:
        metadata=DATA["paq"]["metadata"],
        passages=DATA["paq"]["passages"],
    output:
        **L.beir_files("paq"),
        corpus=L.corpus("paq"),
        queries=L.queries("paq"),
        stats=L.stats("paq"),
        train=L.train_triples("qar"),
    log:
        L.log("data", "build_paq"),
    benchmark:
        L.benchmark("data", "build_paq")
    conda:
        "../../environment.yml"
    params:
        data={**DATA_SHARED, "paq": DATA["paq"]},
        seed=config["seed"],
        model_paths=MODEL_PATHS["tokenizer"],
        allow_downloads=config["allow_downloads"],
    script:
        "../scripts/data_build_paq.py"


rule rir_preprocess:
    input:
        DATA["rir"]["wikipedia"],
    output:
        documents=RIR_WORK / "preprocessed.jsonl",
        stats=RIR_WORK / "preprocess_stats.json",
    log:
        L.log("data", "rir_preprocess"),
    benchmark:
        L.benchmark("data", "rir_preprocess")
    conda:
        "../../environment.yml"
    threads: 4
    params:
        preprocess=DATA["rir"]["preprocess"],
        splitter=DATA["splitter"],
        token_counter=DATA["token_counter"],
        model_paths=MODEL_PATHS["tokenizer"],
        allow_downloads=config["allow_downloads"],
    script:
        "../scripts/data_rir_preprocess.py"


# backend openai talks to a server started beforehand, e.g. on the GPU nodes
#   vllm serve meta-llama/Llama-3.1-70B-Instruct --tensor-parallel-size 4 --port 8000
# at data.rir.rewrite.endpoint. Results are cached in RIR_WORK/rewrite_cache.jsonl (kept when
# the job fails), so a rerun resumes where the last one stopped.
rule rir_rewrite:
    input:
        RIR_WORK / "preprocessed.jsonl",
    output:
        RIR_WORK / "rewrites.jsonl",
    log:
        L.log("data", "rir_rewrite"),
    benchmark:
        L.benchmark("data", "rir_rewrite")
    conda:
        "../../environment.yml"
    resources:
        # only the local transformers backend computes here; the HTTP backend waits on a server
        gpu=1 if DATA["rir"]["rewrite"]["backend"] == "transformers" else 0,
    params:
        rewrite=DATA["rir"]["rewrite"],
        cache=RIR_WORK / "rewrite_cache.jsonl",
        seed=config["seed"],
        model_paths=MODEL_PATHS["rewrite"],
        allow_downloads=config["allow_downloads"],
    script:
        "../scripts/data_rir_rewrite.py"


rule rir_postprocess:
    input:
        documents=RIR_WORK / "preprocessed.jsonl",
        rewrites=RIR_WORK / "rewrites.jsonl",
    output:
        **L.beir_files("rir"),
        corpus=L.corpus("rir"),
        queries=L.queries("rir"),
        stats=L.stats("rir"),
        train=L.train_triples("rir"),
    log:
        L.log("data", "rir_postprocess"),
    benchmark:
        L.benchmark("data", "rir_postprocess")
    conda:
        "../../environment.yml"
    threads: 2
    resources:
        gpu=1,
    params:
        filter=DATA["rir"]["filter"],
        split=DATA["rir"]["split"],
        seed=config["seed"],
        max_document_tokens=DATA["max_document_tokens"],
        model_paths=MODEL_PATHS["filter"],
        allow_downloads=config["allow_downloads"],
    script:
        "../scripts/data_rir_postprocess.py"


# Raw files, only for the URLs the config names (gunzipped on the fly, written atomically,
# checked against the sha256 pinned beside the URL or recorded at the first download).
RAW_DOWNLOADS = {
    **{
        ds: (
            DATA[ds]["path"],
            DATA[ds]["url"],
            DATA[ds].get("sha256"),
            f"data.{ds}.sha256",
        )
        for ds in QA_SOURCES
        if "url" in DATA[ds]
    },
    **{
        f"{ds}_extra_{i}": (
            extra["path"],
            extra["url"],
            extra.get("sha256"),
            f"data.{ds}.extra_corpus[{i}].sha256",
        )
        for ds in QA_SOURCES
        for i, extra in enumerate(DATA[ds].get("extra_corpus", []))
        if "url" in extra
    },
    **{
        f"paq_{part}": (
            DATA["paq"][part],
            DATA["paq"][f"{part}_url"],
            DATA["paq"].get(f"{part}_sha256"),
            f"data.paq.{part}_sha256",
        )
        for part in ("metadata", "passages")
        if f"{part}_url" in DATA["paq"]
    },
}

for _name, (_path, _url, _sha256, _pinned_by) in RAW_DOWNLOADS.items():

    rule:
        name:
            f"download_{_name}"
        output:
            _path,
        log:
            L.log("data", f"download_{_name}"),
        benchmark:
            L.benchmark("data", f"download_{_name}")
        conda:
            "../../environment.yml"
        params:
            url=_url,
            sha256=_sha256 or "",
            pinned_by=_pinned_by,
        script:
            "../scripts/data_download.py"


if "wikipedia_hf_dataset" in DATA["rir"]:

    rule download_wikipedia:
        output:
            DATA["rir"]["wikipedia"],
        log:
            L.log("data", "download_wikipedia"),
        benchmark:
            L.benchmark("data", "download_wikipedia")
        conda:
            "../../environment.yml"
        params:
            dataset=DATA["rir"]["wikipedia_hf_dataset"],
            config_name=DATA["rir"].get("wikipedia_hf_config"),
        script:
            "../scripts/data_download_wikipedia.py"
