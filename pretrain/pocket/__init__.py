"""rebind's pocket world: real data from package registries for small embedded default models.

`python -m pretrain.pocket data --out DIR` builds it (see __main__.py). Nothing heavy is
imported here.
"""
