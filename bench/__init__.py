"""Speed at the counter, measured against the physical limits of the same machine in the same run.

``python -m bench`` builds a shop's history at scale (``bench.generate``), then times checkout,
card lookup, scan to screen, receipts, reports and start-up, each beside the floor it cannot
beat: the same writes done with the plain database driver, a bare endpoint under the same
server, a plain indexed read. See ``bench/README.md``.

Nothing here is a test: no time is asserted anywhere, figures are printed and written to
``bench/results/``.
"""
