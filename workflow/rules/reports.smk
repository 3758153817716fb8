# Reports: the paper's tables and figures, rebuilt from the run's results files (gear/report/).
#
# Targets (rule names) and outputs, P = config["reports_dir"]:
#   table_1             Table 1, retrieval          P/table_1.{md,tex,csv,html}
#   table_2             Table 2, localization       P/table_2.{md,tex,csv,html}
#   table_3             Table 3, generation         P/table_3.{md,tex,csv,html}
#   table_stats         Tables 5-7, data sizes      P/table_{5,6,7}.{md,tex,csv,html}
#   table_significance  GeAR vs each model          P/significance.{md,tex,csv,html}
#   figure_3            Figure 3/5                  P/figures/figure_3.{png,pdf,html}
#   figure_4            Figure 4a (QAR), 4b (RIR)   P/figures/figure_4{a,b}.{png,pdf}
#                       Figure 4c (layers)          P/figures/figure_4c.{png,pdf}
#   explain             explanation pages           P/explain/{dataset}.html
#   report_index        links to everything         P/index.html
# What the model-driven artifacts are drawn from (computed once with GeAR, redrawn freely):
#   P/data/figure_3.json, P/data/explain_{dataset}.json
#
# Table and figure rules read only results JSON (R/eval, R/analysis), stats.json, the training
# triples (Table 5 counts their lines) and gear/report/paper_numbers.yaml, so changing report
# code recomputes nothing upstream. `snakemake --report report.html` collects every table (HTML)
# and figure (PNG) with the captions of workflow/report/*.rst.
import functools

from gear.report.pages import (
    FIGURE_4_SCENARIO,
    report_artifacts,
    report_gear,
    report_targets,
)
from gear.report.tables.jobs import task_inputs, task_metric_names, task_models
from gear.report.tables.paper import PAPER_NUMBERS
from gear.report.tables.text import TASK_OF_TABLE

P = L.reports
FIGURE_DPI = 200
REPORT_GEAR = report_gear(MODELS)
REPORT_SECTIONS = report_artifacts(config, MODELS, P)
TRAIN_SCENARIOS = sorted({scenario_of(d) for d in EVAL_DATASETS})
# Every report artifact of the run (the Snakefile's reproduce_all asks for these).
all_report_targets = functools.partial(report_targets, config, MODELS, P)


# Tables 1-3: one rule each (table_1, table_2, table_3), the same but for the task they show.
for _table, _task in TASK_OF_TABLE.items():

    rule:
        name:
            _table
        input:
            paper=PAPER_NUMBERS,
            results=task_inputs(_task, MODELS, EVAL_DATASETS, L),
        output:
            md=P / f"{_table}.md",
            tex=P / f"{_table}.tex",
            csv=P / f"{_table}.csv",
            html=report(
                P / f"{_table}.html",
                caption=f"../report/{_table}.rst",
                category="Tables",
                subcategory="Results",
            ),
        log:
            L.log("reports", _table),
        benchmark:
            L.benchmark("reports", _table)
        conda:
            "../../environment.yml"
        params:
            table=_table,
            models=task_models(_task, MODELS),
            metrics=task_metric_names(_task, EVAL_DATASETS, config["evaluate"]),
            # Table 3 is printed in points, so its tolerance is in points too.
            tolerance=config["reports"][
                "tolerance_generation" if _task == "generation" else "tolerance"
            ],
            show_ci=config["reports"]["show_ci"],
        script:
            "../scripts/report_table.py"


rule table_stats:
    input:
        paper=PAPER_NUMBERS,
        stats=[L.stats(d) for d in EVAL_DATASETS],
        train=[L.train_triples(s) for s in TRAIN_SCENARIOS],
    output:
        **{
            f"t{n}_{fmt}": P / f"table_{n}.{fmt}"
            for n in (5, 6, 7)
            for fmt in ("md", "tex", "csv")
        },
        t5_html=report(
            P / "table_5.html",
            caption="../report/table_5.rst",
            category="Tables",
            subcategory="Data",
        ),
        t6_html=report(
            P / "table_6.html",
            caption="../report/table_6.rst",
            category="Tables",
            subcategory="Data",
        ),
        t7_html=report(
            P / "table_7.html",
            caption="../report/table_7.rst",
            category="Tables",
            subcategory="Data",
        ),
    log:
        L.log("reports", "table_stats"),
    benchmark:
        L.benchmark("reports", "table_stats")
    conda:
        "../../environment.yml"
    params:
        scenarios=TRAIN_SCENARIOS,
    script:
        "../scripts/report_stats.py"


rule table_significance:
    input:
        **{
            task: task_inputs(task, MODELS, EVAL_DATASETS, L)
            for task in TASK_OF_TABLE.values()
        },
        paper=PAPER_NUMBERS,
    output:
        md=P / "significance.md",
        tex=P / "significance.tex",
        csv=P / "significance.csv",
        html=report(
            P / "significance.html",
            caption="../report/significance.rst",
            category="Tables",
            subcategory="Significance",
        ),
    log:
        L.log("reports", "table_significance"),
    benchmark:
        L.benchmark("reports", "table_significance")
    conda:
        "../../environment.yml"
    params:
        tasks=list(TASK_OF_TABLE.values()),
        metrics={
            task: task_metric_names(task, EVAL_DATASETS, config["evaluate"])
            for task in TASK_OF_TABLE.values()
        },
        reference=REPORT_GEAR.name if REPORT_GEAR else "GeAR",
        models=[m.name for m in MODELS],
        bootstrap=config["evaluate"]["bootstrap"],
    script:
        "../scripts/report_significance.py"


if REPORT_GEAR is not None:
    FIGURE_3_DATASET = config["reports"]["figure3"]["dataset"]

    rule figure_3_data:
        input:
            model=L.final_model(REPORT_GEAR.variant, scenario_of(FIGURE_3_DATASET)),
            corpus=L.corpus(FIGURE_3_DATASET),
            queries=L.queries(FIGURE_3_DATASET),
        output:
            P / "data" / "figure_3.json",
        log:
            L.log("reports", "figure_3_data"),
        benchmark:
            L.benchmark("reports", "figure_3_data")
        conda:
            "../../environment.yml"
        threads: 1
        resources:
            gpu=1,
        params:
            dataset=FIGURE_3_DATASET,
            localization=config["gear"]["localization"],
            top_tokens=config["reports"]["figure3"]["top_tokens"],
            generation=config["evaluate"]["generation"],
            seed=config["seed"],
        script:
            "../scripts/report_figure3_data.py"

    rule figure_3_draw:
        input:
            P / "data" / "figure_3.json",
        output:
            png=report(
                P / "figures" / "figure_3.png",
                caption="../report/figure_3.rst",
                category="Figures",
            ),
            pdf=P / "figures" / "figure_3.pdf",
            html=P / "figures" / "figure_3.html",
        log:
            L.log("reports", "figure_3"),
        benchmark:
            L.benchmark("reports", "figure_3")
        conda:
            "../../environment.yml"
        params:
            dpi=FIGURE_DPI,
        script:
            "../scripts/report_figure3.py"

    rule figure_4_epochs:
        input:
            lambda wildcards: L.epochs_json(
                REPORT_GEAR.name, FIGURE_4_SCENARIO[wildcards.panel]
            ),
        output:
            png=report(
                P / "figures" / "figure_4{panel}.png",
                caption="../report/figure_4ab.rst",
                category="Figures",
            ),
            pdf=P / "figures" / "figure_4{panel}.pdf",
        log:
            L.log("reports", "figure_4{panel}"),
        benchmark:
            L.benchmark("reports", "figure_4{panel}")
        wildcard_constraints:
            panel="a|b",
        conda:
            "../../environment.yml"
        params:
            dpi=FIGURE_DPI,
        script:
            "../scripts/report_figure4_epochs.py"

    rule figure_4_layers:
        input:
            [
                L.layers_json(REPORT_GEAR.name, d)
                for d in config["evaluate"]["layer_analysis"]
                if d in EVAL_DATASETS
            ],
        output:
            png=report(
                P / "figures" / "figure_4c.png",
                caption="../report/figure_4c.rst",
                category="Figures",
            ),
            pdf=P / "figures" / "figure_4c.pdf",
        log:
            L.log("reports", "figure_4c"),
        benchmark:
            L.benchmark("reports", "figure_4c")
        conda:
            "../../environment.yml"
        params:
            chosen_layer=config["gear"]["localization"]["layer"],
            dpi=FIGURE_DPI,
        script:
            "../scripts/report_figure4_layers.py"

    rule explain_data:
        input:
            model=lambda wildcards: L.final_model(
                REPORT_GEAR.variant, scenario_of(wildcards.dataset)
            ),
            corpus=L.corpus("{dataset}"),
            queries=L.queries("{dataset}"),
            run=L.run_file(REPORT_GEAR.name, "{dataset}"),
        output:
            P / "data" / "explain_{dataset}.json",
        log:
            L.log("reports", "explain_data_{dataset}"),
        benchmark:
            L.benchmark("reports", "explain_data_{dataset}")
        wildcard_constraints:
            dataset="|".join(EVAL_DATASETS),
        conda:
            "../../environment.yml"
        threads: 1
        resources:
            gpu=1,
        params:
            explain=config["reports"]["explain"],
            localization=config["gear"]["localization"],
            top_tokens=config["reports"]["figure3"]["top_tokens"],
            generation=config["evaluate"]["generation"],
            seed=config["seed"],
            model_name=REPORT_GEAR.name,
        script:
            "../scripts/report_explain_data.py"

    rule explain_page:
        input:
            P / "data" / "explain_{dataset}.json",
        output:
            report(
                P / "explain" / "{dataset}.html",
                caption="../report/explain.rst",
                category="Explanations",
            ),
        log:
            L.log("reports", "explain_page_{dataset}"),
        benchmark:
            L.benchmark("reports", "explain_page_{dataset}")
        wildcard_constraints:
            dataset="|".join(EVAL_DATASETS),
        conda:
            "../../environment.yml"
        script:
            "../scripts/report_explain_page.py"


rule figure_3:
    input:
        [p for _, p in REPORT_SECTIONS["Figures"] if p.stem == "figure_3"],


rule figure_4:
    input:
        [p for _, p in REPORT_SECTIONS["Figures"] if p.stem.startswith("figure_4")],


rule explain:
    input:
        [p for _, p in REPORT_SECTIONS["Explanation pages"]],


rule report_index:
    input:
        [p for items in REPORT_SECTIONS.values() for _, p in items],
    output:
        P / "index.html",
    log:
        L.log("reports", "index"),
    benchmark:
        L.benchmark("reports", "index")
    conda:
        "../../environment.yml"
    params:
        sections={
            name: [(label, str(p)) for label, p in items]
            for name, items in REPORT_SECTIONS.items()
        },
        title=f"GeAR reproduction: {config['run_name']}",
    script:
        "../scripts/report_index.py"
