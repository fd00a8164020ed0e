"""The networks, written from scratch in numpy: the readable maths (``network``), the fast
mini-batch SGD trainer (``sgd``), training options, the recipe and continuation (``training``),
the weights file (``weights_file``) and a scikit-learn style estimator (``estimator``). Read by
the train rule (through ``pcann.study.runs``), the model files and users' own code."""
