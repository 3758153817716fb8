# GeAR training (paper 3.4, Appendix C, SPEC 5): one model per variant (a key of train.variants:
# GeAR, GeAR_CL) and scenario (qar: PAQ triples, rir: synthesized triples). The work is in
# gear/training/trainer.py; workflow/scripts/train_gear.py is glue.
#
# Resuming: the training state R/models/{model}/{scenario}/state (step checkpoints and the kept
# epoch models) is deliberately NOT an output. Snakemake deletes the outputs of a failed or killed
# job, never the state, so rerunning the same target resumes from the newest valid checkpoint and
# ends with the same weights as a run that never stopped (epochs/ is rebuilt from the state).
#
# Several GPUs: give the job more than one GPU, e.g.
#   snakemake --cores all --set-resources train_gear:gpu=4 reproduce_all
# and the script launches `torchrun --standalone --nproc_per_node 4 -m gear.training.trainer ...` (one
# process per GPU, DDP over nccl; gloo on CPU). train.scenarios.<s>.batch_size stays per process,
# so the global batch grows with the GPUs, and train.queue_size must be a multiple of batch x GPUs
# (the paper: 48 x 16 and 16 x 16 both divide 57,600). On a cluster the profile maps gpu=N to the
# scheduler's GPU request.


rule train_gear:
    input:
        triples=L.train_triples("{scenario}"),
    output:
        model=directory(L.final_model("{model}", "{scenario}")),
        epochs=directory(L.model_root("{model}", "{scenario}") / "epochs"),
    log:
        L.log("gear", "train_{model}_{scenario}"),
    benchmark:
        L.benchmark("gear", "train_{model}_{scenario}")
    wildcard_constraints:
        model="|".join(config["train"]["variants"]),
        scenario="qar|rir",
    conda:
        "../../environment.yml"
    # Capped at --cores by Snakemake; with several processes each gets threads / processes.
    threads: 8
    resources:
        gpu=1,
    params:
        cfg={
            key: config[key]
            for key in (
                "seed",
                "allow_downloads",
                "model_paths",
                "model_revisions",
                "gear",
                "train",
            )
        },
    script:
        "../scripts/train_gear.py"
