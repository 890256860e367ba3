"""ipywidgets for exploring a capture in JupyterLab.

Factories take a ``Capture`` (or frames) and return widgets; what they select and filter is computed by the
pure functions in :mod:`rtcforensics.widgets.select`; plots take a matplotlib ``ax`` and return it.

- :func:`explorer`: choose capture and session, filter by protocol, time window and severity
- :func:`topology_widget` / :func:`draw`: hosts by role, flows by encryption state, findings highlighted
- :func:`timeline_widget` / :func:`draw_timeline`: per flow STUN, DTLS and media phases, findings as marks
- :func:`streams_widget` / :func:`plot_metric`: RTP packets, loss, jitter, bitrate
- :func:`findings_widget`: the findings table, drill-down to a frame's full dissection
- :func:`check_answer` (``labs``): the teaching labs' answer checker
"""

from . import incident, labs, select
from ._avail import frame_or_none as frame
from ._avail import report_or_none as analyze
from .explorer import explorer, sample_captures, summary, table
from .findings import findings_table, findings_widget
from .labs import check_answer
from .streams import plot_metric, streams_widget
from .timeline import draw_timeline, timeline_widget
from .topology import draw, topology_widget

__all__ = [
           "analyze",
           "check_answer",
           "draw",
           "draw_timeline",
           "explorer",
           "findings_table",
           "findings_widget",
           "frame",
           "incident",
           "labs",
           "plot_metric",
           "sample_captures",
           "select",
           "streams_widget",
           "summary",
           "table",
           "timeline_widget",
           "topology_widget",
]
