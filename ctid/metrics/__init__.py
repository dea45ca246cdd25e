"""ctid's Prometheus metrics.

Counters and histograms carry no ``_created`` series: nothing reads them (alerts and
dashboards use ``rate``/``increase``), and they would double the samples prometheus_client
formats on the event loop for every configured team's series.
"""

from prometheus_client import disable_created_metrics

disable_created_metrics()  # type: ignore[no-untyped-call]
