"""ipywidgets for exploring a capture in JupyterLab.

Factories take a ``Capture`` (or frames) and return views; what they select and filter is computed by the
pure functions in :mod:`rtcforensics.widgets.select`; plots take a matplotlib ``ax`` and return it. Every view
is live while the kernel runs and leaves a static copy (HTML tables, PNG figures) in the saved notebook
(:mod:`rtcforensics.widgets._static`); everything from a capture is escaped and its secrets redacted through
``rtcforensics.report.safe`` unless ``show_secrets=True``.

- :func:`verdict_card`: who talked to whom, through which relays, which legs an observer could read, the
  suspect hosts and the top findings
- :func:`ladder_widget` / :func:`draw_ladder`: the call ladder, one column per host, findings marked
- :func:`workbench`: linked views — pick a finding, and topology, ladder, timeline, packet grid and the
  frame's dissection (collapsible per layer) follow
- :func:`explorer`: choose capture and session, filter by protocol, time window and severity
- :func:`topology_widget` / :func:`draw`: hosts by role, flows by encryption state, findings highlighted
- :func:`timeline_widget` / :func:`draw_timeline`: per flow STUN, DTLS and media phases, findings as marks
- :func:`streams_widget` / :func:`plot_metric`: RTP packets, loss, jitter, bitrate of one stream;
  :func:`rtp_views`: every stream's loss and jitter, the payload-entropy plot, audio playback
- :func:`table` / :func:`grid`: a frame as an HTML table / a sortable, searchable grid (static copy kept)
- :func:`findings_widget`: the findings table, drill-down to a frame's full dissection
- :func:`export_widget`: the indicator files (CSV, JSON, STIX 2.1, display filters, pcap slices) from a button
- :func:`lab_widget` / :func:`check_answer` (``labs``): the teaching labs' answer box and checker
"""

from . import incident, labs, select
from ._avail import frame_or_none as frame
from ._avail import report_or_none as analyze
from .board import workbench
from .explorer import explorer, grid, sample_captures, summary, table
from .export import export_widget
from .findings import findings_table, findings_widget
from .labs import check_answer, lab_widget
from .ladder import draw_ladder, ladder_widget
from .streams import plot_metric, rtp_views, streams_widget
from .timeline import draw_timeline, timeline_widget
from .topology import draw, topology_widget
from .verdict import verdict_card

__all__ = [
    "analyze",
    "check_answer",
    "draw",
    "draw_ladder",
    "draw_timeline",
    "explorer",
    "export_widget",
    "findings_table",
    "findings_widget",
    "frame",
    "grid",
    "incident",
    "lab_widget",
    "labs",
    "ladder_widget",
    "plot_metric",
    "rtp_views",
    "sample_captures",
    "select",
    "streams_widget",
    "summary",
    "table",
    "timeline_widget",
    "topology_widget",
    "verdict_card",
    "workbench",
]
