"""The course's own machinery: what the notebooks and tests use to show and check claims, not to fine-tune.

Nothing else in gluekit imports this package. Modules, in import order:
``claims`` (the explanation's claims, as data) -> ``runs`` (what the checks share: one short run)
-> ``checks`` (each claim's computed verdict); ``reference`` (two decisions of GLM-4's
``finetune.py``, modelled); ``memory`` (the textbook ZeRO split, what autograd keeps);
``coverage`` (which ``lora.yaml`` field each notebook cell demonstrates); ``tools`` (the worker of
each batch, the CLI in a subprocess); ``session`` (notebook 12's fine-tuning session, on the
user's GPU or its CPU stand-in).
"""
