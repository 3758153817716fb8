"""Speed and scale of the suite's own code: ``python -m gear.tools.bench {train,encode,search,workflow,all}``.

Every figure comes from the code the workflow runs, not from a toy re-implementation:

- **train**: the trainer's own step (:func:`gear.training.step.train_step`), at bert-base size
  (``--size base``: random init from a default ``transformers.BertConfig``, no download) or a tiny
  size for CI: :class:`gear.training.objectives.GearTrainingModule` (encoders, momentum encoders, feature queues,
  ITC with soft targets, fusion pass, decoder, LM loss) in the trainer's precision
  (:class:`gear.training.precision.StepPrecision`, ``--dtype``: bf16 autocast, bf16 weights with float32
  masters, or fp32), the trainer's AdamW (:func:`gear.training.step.build_optimizer`, fused on CUDA and CPU),
  enqueue, momentum update and temperature clamp, optionally the trainer's ``torch.compile`` of
  the five stacks. One more, untimed step runs under :func:`gear.tools.opcount.count_operators`: the
  operators per step (about one kernel launch each on CUDA), casts and host synchronisations
  go into ``details.operators_per_step``. Input:
  random token ids of fixed lengths (query 32, target 32 tokens; document 192 for QAR-like, 512
  for RIR-like input), no padding, as in the plain-PyTorch baseline of PERF-NOTES.md.
- **encode**: documents through :func:`gear.evaluation.embeddings.encode_texts` and
  :class:`gear.inference.GearEncoder`'s batching (length-sorted, padded to multiples of 16,
  bf16 autocast on CUDA, fp32 on CPU), with the model built in memory instead of loaded from a
  folder. Texts: a realistic length mix, documents drawn from the normalised corpora of the
  mini run (or built from ``data_prep/mini`` when absent) in proportion to the paper-scale
  corpus sizes of SPEC §2 (RIR 2,315,413, PAQ 1M, TriviaQA 104,160, NQ 64,501, SQuAD 20,239
  documents), so 2/3 are RIR documents of 200-500 tokens and 1/3 are 100-word passages. Two
  figures: end to end (tokenising included), and the model alone on pre-tokenised batches.
- **search**: exact inner-product search by :mod:`gear.evaluation.search`, with the backend ``search()``
  itself would pick (``--suite-backend auto``: FAISS ``IndexFlatIP`` on the GPU when FAISS has
  one, else gear.evaluation.search's torch backend, fp16 product and top-k on CUDA, else FAISS on the CPU;
  the row's name says which ran) over random unit vectors stored float16 as the embedding cache
  stores them, index build (copy to the device) and search timed apart; optionally (``--backend
  torch``) the reference the PERF-NOTES baseline measured: an fp16 matrix product and
  ``torch.topk`` on the device.
- **workflow**: per-rule and per-stage wall time and peak memory of a Snakemake run, from the
  rules' ``benchmark:`` files (``R/benchmarks/{stage}/{job}.tsv``, ``gear.layout.Layout.benchmark``;
  each job's rule is read from the Snakemake log, whose log path has the same stage and job
  name) when present, else from the job start and finish times in ``.snakemake/log/`` (wall
  time only: the log holds no memory).
- **run**: any command's wall time and the peak memory of its whole process tree, summed over
  the processes alive at once (:mod:`gear.tools.treemem`): what a machine must hold for a workflow
  that runs jobs in parallel, which per-job figures do not show.

**Timing.** Warm-up steps (kernel selection, ``torch.compile``, allocator growth) are run and
excluded. On CUDA, timed regions start and end with ``torch.cuda.synchronize()``; per-step
times come from CUDA events recorded between steps (no host synchronisation inside the timed
loop, as in the trainer). No tqdm inside timed loops: a progress bar costs host time.

**FLOPs** (:func:`gear_step_flops`, :func:`encoding_flops`) are counted analytically, matrix
products only (2 per multiply-add), as the usual model-FLOP convention: per layer of ``L``
tokens, ``8 L H^2 + 4 L H F + 4 L^2 H`` (QKV, output projection, feed-forward, scores and
attention-weighted values); a cross-attention block from ``L`` tokens to ``S`` states
``4 L H^2 + 4 S H^2 + 4 L S H``; the LM head ``2 T H^2 + 2 T H V``; the contrastive similarities
against batch + queue. Trainable parts count 3x their forward (forward, input and weight
gradients), the momentum encoders 1x, the online similarities 2x (the banks have no gradient).
Causal self-attention is counted in full, as ``torch.utils.flop_counter`` does (the decoder's 32
tokens make this immaterial). ``tests/test_bench.py`` checks the formula against
``torch.utils.flop_counter.FlopCounterMode`` on a real step. Model FLOP utilisation (MFU) is
achieved model FLOP/s over a peak: ``--peak-tflops`` (default 784, the bf16 matrix peak measured
on one H100 in PERF-NOTES.md, used for CUDA bf16 runs only; ``--peak-tflops measure`` times an
8192^3 product on the device). The peak used is printed with every figure.

Example:
    python -m gear.tools.bench all --size tiny --json bench-tiny.json          # CI form, CPU, seconds
    python -m gear.tools.bench train --doc-tokens 512 --batch 64               # full form on a GPU

Each result prints as one Markdown table row (date, benchmark, figure, MFU, device, dtype,
batch, lengths, command); ``--json OUT`` writes them all, with the environment, atomically.

Modules, one bench each: :mod:`~gear.tools.bench.train`, :mod:`~gear.tools.bench.encode`,
:mod:`~gear.tools.bench.search`, :mod:`~gear.tools.bench.workflow`; :mod:`~gear.tools.bench.flops`
(the FLOP formula), :mod:`~gear.tools.bench.common` (result rows, environment, timing, model
sizes) and :mod:`~gear.tools.bench.cli` (the command line). Adding a bench: a module with a
``bench_*`` function returning :class:`~gear.tools.bench.common.BenchResult` rows, and its
subcommand in ``cli.py``.
"""
