"""Benchmarks of pcd-imagelib-ha against the embedded lab (``python -m bench``, what ``make bench`` runs).

They print figures and ratios against a baseline measured in the same run; they assert nothing. This
package must not import Pulumi at import time: the upload child process runs ``bench.upload_child``.
"""
