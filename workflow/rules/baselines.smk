# Retrained baselines (SPEC 8, paper 4.1): SBERT_RT and BGE_RT, trained from
# baselines.start_checkpoint on the same training triples as GeAR, one model per scenario.
# Pretrained baselines need no rule: the registry resolves them (baselines/registry.py).
# Step checkpoints (resumable training) are written every baselines.checkpoint_every_steps steps
# once the config has that key; without it the retrainers write none.
from baselines.registry import start_checkpoint_folder


rule train_sbert_rt:
    input:
        triples=L.train_triples("{scenario}"),
    output:
        model=directory(L.final_model("SBERT_RT", "{scenario}")),
    log:
        L.log("baselines", "train_sbert_rt_{scenario}"),
    benchmark:
        L.benchmark("baselines", "train_sbert_rt_{scenario}")
    wildcard_constraints:
        scenario="qar|rir",
    conda:
        "../../environment.yml"
    threads: 2
    resources:
        gpu=1,
    params:
        sbert_rt=config["baselines"]["sbert_rt"],
        start_checkpoint=lambda wildcards: start_checkpoint_folder(config, RESOLVED),
        start_revision=config["model_revisions"].get(
            config["baselines"]["start_checkpoint"]
        ),
        seed=config["seed"],
        checkpoint_every_steps=config["baselines"].get("checkpoint_every_steps"),
        work_dir=lambda wildcards: str(L.train_state("SBERT_RT", wildcards.scenario)),
    script:
        "../scripts/train_sbert_rt.py"


rule train_bge_rt:
    input:
        triples=L.train_triples("{scenario}"),
    output:
        model=directory(L.final_model("BGE_RT", "{scenario}")),
    log:
        L.log("baselines", "train_bge_rt_{scenario}"),
    benchmark:
        L.benchmark("baselines", "train_bge_rt_{scenario}")
    wildcard_constraints:
        scenario="qar|rir",
    conda:
        "../../environment.yml"
    threads: 2
    resources:
        gpu=config["baselines"]["bge_rt"]["nproc_per_node"],
    params:
        bge_rt=config["baselines"]["bge_rt"],
        start_checkpoint=lambda wildcards: start_checkpoint_folder(config, RESOLVED),
        start_revision=config["model_revisions"].get(
            config["baselines"]["start_checkpoint"]
        ),
        seed=config["seed"],
        checkpoint_every_steps=config["baselines"].get("checkpoint_every_steps"),
        work_dir=lambda wildcards: str(L.train_state("BGE_RT", wildcards.scenario)),
    script:
        "../scripts/train_bge_rt.py"
