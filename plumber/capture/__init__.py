"""Running a script, or a pipeline in this process, under the instrumentation.

``session`` installs the tf.data and DataLoader hooks, the sampler and the
request tracer, and assembles the Profile; ``scriptrun`` runs the user's
script as ``__main__`` (signals, exit status, forked children);
``inprocess`` is plumber's own loop over a dataset or loader, used by the
notebook API and ``plumber.optimize``. Above the framework adapters, below
the tuner and the command line.
"""
