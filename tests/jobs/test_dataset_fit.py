"""A dataset that does not fit the entry is refused at submit (422), not a traceback at run time."""

from __future__ import annotations

from pathlib import Path

import pytest

from aimass import Client
from aimass.errors import Unprocessable
from aimass.plugins.columns import Columns

pytestmark = pytest.mark.backend("sqlite")  # slow end to end: one backend (tests/conftest.py)

IRIS = [("sepal_length", "float64"), ("petal_width", "float64"), ("target", "int64")]


def test_columns_name_what_a_table_lacks() -> None:
    table = Columns()
    assert table.problem({}, IRIS, "iris v1") is None
    assert table.problem({"target": "sepal_length"}, IRIS, "iris v1") is None
    missing = table.problem({"target": "species"}, IRIS, "iris v1")
    assert missing == (
        "params.target: dataset iris v1 has no column 'species' "
        "(columns: sepal_length, petal_width, target)"
    )
    text = table.problem({}, [("city", "object"), *IRIS], "people v2")
    assert text is not None and text.startswith("dataset people v2: the features must be numbers")
    assert "'city' is not" in text
    texts = Columns(target_default="label", named={"text": "text"}, numeric_features=False)
    assert texts.problem({}, [("text", "str"), ("label", "str")], "t v1") is None
    assert "has no column 'text'" in (texts.problem({}, IRIS, "iris v1") or "")


@pytest.fixture
def uploaded(client: Client, tmp_path: Path) -> Client:
    """A project with a table whose features include a text column."""
    people = tmp_path / "people.csv"
    people.write_text("age,city,score,label\n31,Oslo,0.5,1\n45,Lima,0.7,0\n28,Pune,0.1,1\n")
    client.datasets.upload("people", people)
    return client


def test_a_dataset_that_does_not_fit_is_refused_at_submit(uploaded: Client) -> None:
    client = uploaded
    with pytest.raises(Unprocessable) as text:
        client.jobs.submit("classical.random_forest", dataset="people")
    assert "dataset people v1: the features must be numbers, and 'city' is not" in str(text.value)
    with pytest.raises(Unprocessable) as target:
        client.jobs.submit("sklearn.sgd_classifier", dataset="people", params={"target": "y"})
    assert "params.target: dataset people v1 has no column 'y'" in str(target.value)
    with pytest.raises(Unprocessable) as no_text:
        client.jobs.submit("nlp.tfidf_linear", dataset="people")
    assert "params.text: dataset people v1 has no column 'text'" in str(no_text.value)
    assert client.jobs.list() == [], "nothing was queued"
    # The text column as the label: every feature is a number, so it is accepted.
    job = client.jobs.submit("classical.random_forest", dataset="people", params={"target": "city"})
    assert job.state == "queued"
