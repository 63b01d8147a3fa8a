"""Finetuning and evaluation on GLUE, SQuAD 1.1/2.0 and RACE, as in the RoBERTa paper.

Plain functions, no Prefect or Ray (the `finetune-eval` flow fans these out). Modules, one
idea each -- import them directly (this package imports nothing, so `roberta results` stays
light):

    tasks        registry: TaskSpec per task (type, labels, metrics, Table 10 hyperparameters,
                 paper reference numbers), get_task, parse_tasks, hyperparameter_grid
    readers      GLUE TSV / SQuAD JSON / RACE directories -> records; DataFormatError
    hub          optional `datasets` loading (hub or save_to_disk directories)
    metrics      official GLUE, SQuAD (EM/F1, no-answer) and RACE metrics
    encoding     tokenizer loading; fairseq input layouts; SQuAD doc-stride windows
    heads        task models around Roberta.encode (sequence, span + answerability, choice)
    span_decode  SQuAD window logits -> answer text
    task_data    per task type: features, batches, model, dev scoring
    finetune     finetune_and_evaluate (one job), run_job (errors as results)
    job_cache    finished jobs under <root>/results/jobs, keyed by checkpoint, data and settings
    aggregate    job results -> reported figures (median over seeds of the best epoch)
    results      <root>/results/results.{parquet,csv,md,png}; rich rendering
    synthetic    learnable synthetic tasks in the real formats; a tiny random-init checkpoint
    ablations    the paper's Section 4 arms, scale mapping, paper numbers, tables and charts
"""
