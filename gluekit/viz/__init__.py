"""Pictures and widgets for notebooks (matplotlib, ipywidgets, HTML). Not imported by ``gluekit``.

One module per topic; each function takes gluekit's / the ecosystem's objects and returns a
matplotlib Figure, an ``IPython.display.HTML`` or an ipywidgets widget.
"""
