"""The Class distances page's views, each chosen on its defaults (AppTest)."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from tests.paths import APP


def test_compare_two_runs_on_its_defaults_draws_before_after_and_their_difference() -> None:
    # the "after" matrix was computed only by the first view: this view raised a NameError
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.switch_page("pages/distances.py").run()
    at.button_group(key="dist_view").set_value("Compare two runs").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert [t.split(" — ")[0] for t in titles] == ["Before and after", "Difference after − before"]
