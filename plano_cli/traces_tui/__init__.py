"""`plano traces`' interactive viewer (textual).

One job per module. The list: `run` starts the viewer from the command line, `app` is the
App, `list_screen` the main screen; `trace_list` draws the rows, `list_columns` says what
each column shows and which fit, `filter_bar` and `filter_text` are the filter bar and its
language, `status_line` the line under the list; `loader` reads pages of the store and
`live` polls it for traces that gained calls, both off the UI thread. One trace in full:
`detail_screen`, with the waterfall, its calls, messages and `detail_*` sections.

Imported only when the viewer opens: the scriptable commands never load textual.
"""
