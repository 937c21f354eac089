"""The benchmark suite behind ``sisam bench`` (issue 5): recall against selection rate for
sisam and its peers, on synthetic worlds and on real public data, and speed against size.

One concern per module: ``metrics`` (figures and bootstrap intervals), ``peers`` (the
rankings sisam is measured against), ``node`` (sisam's HPB network on a table of
categorical attributes, for real data), ``datasets`` (real data shipped by registry
packages), ``suites`` (the runs), ``report`` (JSON, Markdown and HTML with SVG plots).
"""
