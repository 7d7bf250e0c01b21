"""`sfrun tune`: search recipe inputs (and recipes) for the best accuracy at a cost, on a dev split.

Modules, one concept each:

* ``space``: the search space (``--space``) and the configurations it yields;
* ``goals``: the objectives (``--objective``) and the constraint (``--constraint``);
* ``probe``: dry runs on a stand-in model that check searched values before a model runs;
* ``trials``: running one configuration on items through the eval store;
* ``racing``: when a configuration is stopped before it has seen every dev item;
* ``search``: the Optuna study (SQLite, resumable) that proposes configurations;
* ``front``: the Pareto front with CIs and the configuration chosen under the constraint;
* ``report``: the HTML report (front plot and trial history);
* ``cli``: the command.
"""
