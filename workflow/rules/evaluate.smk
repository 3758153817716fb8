# Evaluation (SPEC 6-7, paper 4.2-4.4): retrieval, localization and generation of every model in
# evaluate.models on every data set in evaluate.datasets, as each registry entry's `tasks` allow;
# GeAR's localization by cross-attention layer (Figure 4c) and per epoch (Figure 4a/b).
# The work is in gear/evaluate.py; EVAL (gear.evaluate.EvaluationPlan) gives each job its inputs
# and params, which carry only the config sections the job reads, so editing training or report
# settings reruns no evaluation.
from gear.evaluate import EvaluationPlan

EVAL = EvaluationPlan(config, MODELS, L)


rule evaluate_all:
    input:
        EVAL.targets(),


rule evaluate_retrieval:
    input:
        unpack(EVAL.inputs),
    output:
        json=str(L.eval_json("{model}", "{dataset}", "retrieval")),
        run=str(L.run_file("{model}", "{dataset}")),
    log:
        str(L.log("evaluate", "{model}_{dataset}_retrieval")),
    wildcard_constraints:
        model=EVAL.model_pattern("retrieval"),
        dataset=EVAL.dataset_pattern(),
    threads: 2
    resources:
        gpu=1,
    params:
        entry=EVAL.entry,
        cfg=EVAL.job_config,
    script:
        "../scripts/evaluate_retrieval.py"


rule evaluate_localization:
    input:
        unpack(EVAL.inputs),
    output:
        json=str(L.eval_json("{model}", "{dataset}", "localization")),
    log:
        str(L.log("evaluate", "{model}_{dataset}_localization")),
    wildcard_constraints:
        model=EVAL.model_pattern("localization"),
        dataset=EVAL.dataset_pattern(),
    threads: 2
    resources:
        gpu=1,
    params:
        entry=EVAL.entry,
        cfg=EVAL.job_config,
    script:
        "../scripts/evaluate_localization.py"


rule evaluate_generation:
    input:
        unpack(EVAL.inputs),
    output:
        json=str(L.eval_json("{model}", "{dataset}", "generation")),
    log:
        str(L.log("evaluate", "{model}_{dataset}_generation")),
    wildcard_constraints:
        model=EVAL.model_pattern("generation"),
        dataset=EVAL.dataset_pattern(),
    threads: 2
    resources:
        gpu=1,
    params:
        entry=EVAL.entry,
        cfg=EVAL.job_config,
    script:
        "../scripts/evaluate_generation.py"


rule layer_analysis:
    input:
        unpack(EVAL.inputs),
    output:
        json=str(L.layers_json("{model}", "{dataset}")),
    log:
        str(L.log("evaluate", "{model}_{dataset}_layers")),
    wildcard_constraints:
        model=EVAL.model_pattern("layers"),
        dataset=EVAL.dataset_pattern("layers"),
    threads: 2
    resources:
        gpu=1,
    params:
        entry=EVAL.entry,
        cfg=EVAL.job_config,
    script:
        "../scripts/evaluate_layers.py"


rule epoch_analysis:
    input:
        unpack(EVAL.epoch_inputs),
    output:
        json=str(L.epochs_json("{model}", "{scenario}")),
    log:
        str(L.log("evaluate", "{model}_{scenario}_epochs")),
    wildcard_constraints:
        model=EVAL.model_pattern("epochs"),
        scenario="qar|rir",
    threads: 2
    resources:
        gpu=1,
    params:
        entry=EVAL.entry,
        cfg=EVAL.job_config,
    script:
        "../scripts/evaluate_epochs.py"
