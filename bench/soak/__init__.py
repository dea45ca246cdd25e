"""The soak run (``make soak``, ``python -m bench.soak``): the real daemon against a simulated
floor for minutes, sampled from outside, its store then checked call by call.

``floor`` sizes the simulated floor, ``processes`` starts ``ctid simulate`` and ``ctid run``,
``probe`` reads ``/proc`` and ``/metrics``, ``run`` drives one soak, ``check`` compares the
store with the truth, ``figures``/``report``/``table`` turn samples into figures.
"""
