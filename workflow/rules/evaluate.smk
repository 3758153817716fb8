# Evaluation (SPEC 6-7, paper 4.2-4.4): retrieval, localization and generation of every model in
# evaluate.models on every data set in evaluate.datasets, as each registry entry's `tasks` allow;
# GeAR's localization by cross-attention layer (Figure 4c) and per epoch (Figure 4a/b).
#
# One job per (model, scenario): it loads the model once and writes one result file per (data
# set, task), R/eval/{model}/{dataset}/{task}.json (+ run.tsv, + R/analysis/layers for GeAR).
# Start-up and model loading dominate small test sets, so this keeps the mini run short; at paper
# scale a job is a model's full evaluation on one GPU. The work is in gear/evaluation/evaluate.py
# (run_model), the planning in gear/workflow/evaluation_plan.py (EvaluationPlan); params carry only
# the config sections a job reads, so editing training or report settings reruns no evaluation. A
# job loads its registry entry by name; the entry's digest in params reruns it when that entry
# is edited (and only then).
from gear.workflow.evaluation_plan import EvaluationPlan

EVAL = EvaluationPlan(config, MODELS, L)


rule evaluate_all:
    input:
        EVAL.targets(),


for _model, _scenario in EVAL.jobs():

    rule:
        name:
            f"evaluate_{_model}_{_scenario}"
        input:
            **EVAL.job_inputs(_model, _scenario),
        output:
            **EVAL.job_outputs(_model, _scenario),
        log:
            str(L.log("evaluate", f"{_model}_{_scenario}")),
        benchmark:
            str(L.benchmark("evaluate", f"{_model}_{_scenario}"))
        conda:
            "../../environment.yml"
        threads: 1
        resources:
            gpu=1,
        params:
            model=_model,
            registry=config["registry"],
            entry=EVAL.entry_digest(_model),
            cfg=EVAL.job_config(_model),
            scenario=_scenario,
            datasets=EVAL.job_datasets(_scenario),
        script:
            "../scripts/evaluate_model.py"


rule epoch_analysis:
    input:
        unpack(EVAL.epoch_inputs),
    output:
        json=str(L.epochs_json("{model}", "{scenario}")),
    log:
        str(L.log("evaluate", "{model}_{scenario}_epochs")),
    benchmark:
        str(L.benchmark("evaluate", "{model}_{scenario}_epochs"))
    wildcard_constraints:
        model=EVAL.model_pattern("epochs"),
        scenario="qar|rir",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        gpu=1,
    params:
        registry=config["registry"],
        entry=EVAL.entry_digest,
        cfg=EVAL.job_config,
    script:
        "../scripts/evaluate_epochs.py"
