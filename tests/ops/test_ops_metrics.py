"""The Prometheus registry writes exact 0.0.4 text and escapes hostile label values."""

from __future__ import annotations

import math

import pytest

from asterisk_recorder.ops.metrics import (
    Counter,
    Gauge,
    Histogram,
    RecorderMetrics,
    Registry,
    escape_help,
    escape_label_value,
    format_value,
)


class TestExposition:
    """Small registries produce exactly the expected text."""

    def test_counter_with_labels(self) -> None:
        """A labelled counter prints HELP, TYPE and one line per series in first-seen order."""
        registry = Registry()
        counter = registry.counter("x_total", "Things.", ("a", "b"))
        counter.inc(a="1", b="2")
        counter.inc(2.5, a="1", b="2")
        counter.inc(a="z", b="y")

        assert (
            "# HELP x_total Things.\n"
            "# TYPE x_total counter\n"
            'x_total{a="1",b="2"} 3.5\n'
            'x_total{a="z",b="y"} 1.0\n'
        ) == registry.exposition()

    def test_unlabelled_counter_and_gauge_start_at_zero(self) -> None:
        """Unlabelled metrics are exposed (as 0.0) before anything happens."""
        registry = Registry()
        registry.counter("c_total", "C.")
        registry.gauge("g", "G.")

        assert (
            "# HELP c_total C.\n# TYPE c_total counter\nc_total 0.0\n"
            "# HELP g G.\n# TYPE g gauge\ng 0.0\n"
        ) == registry.exposition()

    def test_labelled_metric_without_series_prints_only_help_and_type(self) -> None:
        """A labelled counter with no series yet has no sample lines."""
        registry = Registry()
        registry.counter("c_total", "C.", ("server",))

        assert "# HELP c_total C.\n# TYPE c_total counter\n" == registry.exposition()

    def test_histogram_buckets_are_cumulative_with_inf_sum_and_count(self) -> None:
        """Histogram lines: cumulative buckets with le, +Inf, then _sum and _count."""
        registry = Registry()
        histogram = registry.histogram("h_seconds", "H.", buckets=(0.1, 1))
        histogram.observe(0.05)
        histogram.observe(0.1)
        histogram.observe(0.5)
        histogram.observe(7)

        assert (
            "# HELP h_seconds H.\n"
            "# TYPE h_seconds histogram\n"
            'h_seconds_bucket{le="0.1"} 2.0\n'
            'h_seconds_bucket{le="1.0"} 3.0\n'
            'h_seconds_bucket{le="+Inf"} 4.0\n'
            "h_seconds_sum 7.65\n"
            "h_seconds_count 4.0\n"
        ) == registry.exposition()

    def test_labelled_histogram_puts_le_last(self) -> None:
        """In a labelled histogram, le follows the series labels."""
        histogram = Histogram("h", "H.", ("driver",), buckets=(1.0,))
        histogram.observe(0.5, driver="agi")

        assert [
            'h_bucket{driver="agi",le="1.0"} 1.0',
            'h_bucket{driver="agi",le="+Inf"} 1.0',
            'h_sum{driver="agi"} 0.5',
            'h_count{driver="agi"} 1.0',
        ] == histogram.samples()

    def test_gauge_set_inc_dec(self) -> None:
        """A gauge goes up and down."""
        gauge = Gauge("g", "G.")
        gauge.set(5)
        gauge.inc()
        gauge.dec(2)

        assert ["g 4.0"] == gauge.samples()

    def test_gauge_callback_is_read_at_exposition_time(self) -> None:
        """A gauge bound to a function shows the function's value when scraped."""
        depth = [3]
        gauge = Gauge("spool", "S.")
        gauge.set_function(lambda: depth[0])
        depth[0] = 9

        assert ["spool 9.0"] == gauge.samples()

    def test_failing_gauge_callback_shows_nan(self) -> None:
        """A broken callback never breaks the scrape: the value is NaN."""
        gauge = Gauge("spool", "S.")
        gauge.set_function(lambda: 1 / 0)

        assert ["spool NaN"] == gauge.samples()

    @pytest.mark.parametrize(
        ("value", "text"),
        [(1, "1.0"), (0.005, "0.005"), (math.inf, "+Inf"), (-math.inf, "-Inf"), (math.nan, "NaN")],
    )
    def test_format_value(self, value: float, text: str) -> None:
        """Values are written the way Prometheus writes them."""
        assert text == format_value(value)


class TestEscaping:
    """Label values and help text cannot break the format."""

    def test_label_value_escapes_backslash_quote_and_newline(self) -> None:
        """Backslash, double quote and newline are escaped, nothing else."""
        assert 'a\\\\b\\"c\\nd,}{=' == escape_label_value('a\\b"c\nd,}{=')

    def test_hostile_label_values_stay_on_one_line_inside_quotes(self) -> None:
        """Hostile values (quotes, newlines, braces, fake samples, 10 kB) stay one quoted value."""
        counter = Counter("e_total", "E.", ("server", "status"))
        hostile = [
            'x"} 1\nfake_metric 999\n#',
            "a\\",
            "${SHELL(id)}|,)",
            "\r\n\0",
            "../../etc/passwd",
            "é\udcff",
            "A" * 10_000,
        ]
        for value in hostile:
            counter.inc(server=value, status="500")

        lines = counter.samples()

        assert len(hostile) == len(lines)
        for line, value in zip(lines, hostile, strict=True):
            assert f'e_total{{server="{escape_label_value(value)}",status="500"}} 1.0' == line
            assert "\n" not in line
        assert all(line.encode("utf-8") for line in lines)

    def test_lone_surrogate_is_written_as_an_escape(self) -> None:
        """Text from invalid UTF-8 (a lone surrogate) becomes a visible escape, and encodes."""
        assert "\\\\udcff" == escape_label_value("\udcff")

    def test_help_escapes_backslash_and_newline_but_not_quotes(self) -> None:
        """HELP text escapes backslash and newline only."""
        assert 'a\\\\b\\n"c"' == escape_help('a\\b\n"c"')


class TestMisuse:
    """Misuse is refused with a clear error and changes nothing."""

    def test_counter_refuses_to_go_down(self) -> None:
        """A negative increment raises and leaves the value alone."""
        counter = Counter("c_total", "C.")
        with pytest.raises(ValueError, match="cannot go down"):
            counter.inc(-1)

        assert 0.0 == counter.value()

    @pytest.mark.parametrize("labels", [{}, {"a": "1", "b": "2"}, {"b": "1"}])
    def test_wrong_labels_are_refused(self, labels: dict[str, str]) -> None:
        """Labels must be exactly the declared names."""
        counter = Counter("c_total", "C.", ("a",))
        with pytest.raises(ValueError, match="takes labels"):
            counter.inc(**labels)

        assert [] == counter.samples()

    def test_non_string_label_value_is_refused(self) -> None:
        """Label values must be strings."""
        counter = Counter("c_total", "C.", ("status",))
        with pytest.raises(TypeError, match="must be str"):
            counter.inc(status=500)  # type: ignore[arg-type]

    @pytest.mark.parametrize("name", ["", "9x", "a-b", "a b", 'x"'])
    def test_bad_metric_names_are_refused(self, name: str) -> None:
        """Metric names follow [a-zA-Z_:][a-zA-Z0-9_:]*."""
        with pytest.raises(ValueError, match="invalid metric name"):
            Counter(name, "C.")

    @pytest.mark.parametrize("label", ["__x", "a-b", "1a", "amount", "value"])
    def test_bad_label_names_are_refused(self, label: str) -> None:
        """Label names are identifiers, not reserved, and do not clash with parameters."""
        with pytest.raises(ValueError, match="label name"):
            Counter("c_total", "C.", (label,))

    def test_histogram_refuses_le_label_unsorted_buckets_and_nan(self) -> None:
        """Histograms reserve le, need increasing buckets and refuse NaN observations."""
        with pytest.raises(ValueError, match="reserved"):
            Histogram("h", "H.", ("le",), buckets=(1.0,))
        with pytest.raises(ValueError, match="strictly increasing"):
            Histogram("h", "H.", buckets=(2.0, 1.0))
        histogram = Histogram("h", "H.", buckets=(1.0,))
        with pytest.raises(ValueError, match="NaN"):
            histogram.observe(math.nan)

        assert 0 == histogram.count()

    def test_duplicate_registration_is_refused(self) -> None:
        """Two metrics of one name cannot share a registry."""
        registry = Registry()
        registry.counter("c_total", "C.")
        with pytest.raises(ValueError, match="already registered"):
            registry.gauge("c_total", "G.")

    def test_labelled_gauge_cannot_take_a_callback(self) -> None:
        """set_function needs an unlabelled gauge."""
        with pytest.raises(ValueError, match="without labels"):
            Gauge("g", "G.", ("a",)).set_function(lambda: 1.0)


class TestRecorderMetrics:
    """The product's metric set."""

    def test_exports_the_documented_families(self) -> None:
        """Every documented metric is present with its type."""
        text = RecorderMetrics().exposition()
        types = [line.split()[2:] for line in text.splitlines() if line.startswith("# TYPE")]

        assert [
            ["asterisk_recorder_calls_active", "gauge"],
            ["asterisk_recorder_decisions_total", "counter"],
            ["asterisk_recorder_flow_seconds", "histogram"],
            ["asterisk_recorder_reaction_seconds", "histogram"],
            ["asterisk_recorder_ari_reconnects_total", "counter"],
            ["asterisk_recorder_ari_rest_errors_total", "counter"],
            ["asterisk_recorder_ledger_spool_depth", "gauge"],
            ["asterisk_recorder_agi_sessions_active", "gauge"],
            ["asterisk_recorder_calls_crashed_total", "counter"],
            ["asterisk_recorder_call_fates_total", "counter"],
            ["asterisk_recorder_agi_peers_refused_total", "counter"],
            ["asterisk_recorder_checkpoint_witness_delivered_size", "gauge"],
            ["asterisk_recorder_checkpoint_witness_failures_total", "counter"],
            ["asterisk_recorder_checkpoint_witness_lag_seconds", "gauge"],
            ["asterisk_recorder_checkpoint_witness_superseded_total", "counter"],
            ["asterisk_recorder_ledger_tree_size", "gauge"],
            ["asterisk_recorder_checkpoint_size", "gauge"],
            ["asterisk_recorder_checkpoint_uncovered_seconds", "gauge"],
            ["asterisk_recorder_checkpoint_failures", "gauge"],
            ["asterisk_recorder_pauses_active", "gauge"],
            ["asterisk_recorder_pause_alerts", "gauge"],
        ] == types

    def test_observe_decision_counts_and_times(self) -> None:
        """observe_decision bumps the decision counter and the flow histogram."""
        metrics = RecorderMetrics()
        metrics.observe_decision(
            outcome="recorded_notified", mode="opt_out", driver="ari", flow_seconds=4.2
        )
        text = metrics.exposition()

        assert (
            'asterisk_recorder_decisions_total{outcome="recorded_notified",mode="opt_out",'
            'driver="ari"} 1.0\n'
        ) in text
        assert 'asterisk_recorder_flow_seconds_bucket{le="5.0"} 1.0\n' in text
        assert 'asterisk_recorder_flow_seconds_bucket{le="3.0"} 0.0\n' in text
        assert "asterisk_recorder_flow_seconds_count 1.0\n" in text
