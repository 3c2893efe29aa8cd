from __future__ import annotations

from flowyard.client._sse import ServerSentEvent, SseParser


def parse(text: str) -> list[ServerSentEvent]:
    return list(SseParser().feed_all(text.splitlines()))


def test_an_event_is_dispatched_on_a_blank_line_with_its_name_data_and_id() -> None:
    events = parse('event: log\nid: 7\ndata: {"id": 7}\n\n')
    assert events == [ServerSentEvent("log", '{"id": 7}', "7")]


def test_several_data_lines_are_joined_with_newlines() -> None:
    assert parse("data: one\ndata: two\n\n")[0].data == "one\ntwo"


def test_an_event_without_a_name_is_a_message() -> None:
    assert parse("data: x\n\n")[0].event == "message"


def test_comment_lines_are_ignored_as_keep_alives() -> None:
    assert parse(": keep-alive\n\n: again\nevent: end\ndata: {}\n\n") == [
        ServerSentEvent("end", "{}", None)
    ]


def test_blank_lines_alone_dispatch_nothing() -> None:
    assert parse("\n\nid: 3\n\n") == []


def test_a_named_event_without_data_is_still_dispatched_so_a_bare_end_ends_the_stream() -> None:
    assert parse("event: end\n\n") == [ServerSentEvent("end", "", None)]


def test_an_unfinished_event_at_the_end_of_the_stream_is_dropped() -> None:
    assert parse("event: log\ndata: half") == []


def test_the_last_event_id_persists_until_changed_and_an_empty_id_resets_it() -> None:
    parser = SseParser()
    events = list(parser.feed_all(["id: 5", "data: a", "", "data: b", "", "id:", "data: c", ""]))
    assert [e.id for e in events] == ["5", "5", None]
    assert parser.last_event_id is None


def test_an_id_containing_nul_is_ignored() -> None:
    parser = SseParser()
    list(parser.feed_all(["id: 3", "data: a", "", "id: 4\0", "data: b", ""]))
    assert parser.last_event_id == "3"


def test_retry_sets_the_reconnection_delay_only_when_it_is_a_number() -> None:
    parser = SseParser()
    list(parser.feed_all(["retry: 1500", "retry: soon", "data: x", ""]))
    assert parser.retry_ms == 1500


def test_only_one_space_after_the_colon_is_stripped_and_no_colon_means_empty_value() -> None:
    events = parse("data:  two spaces\ndata\n\n")
    assert events[0].data == " two spaces\n"


def test_carriage_return_line_endings_are_tolerated() -> None:
    parser = SseParser()
    events = list(parser.feed_all(["event: log\r\n", "data: x\r\n", "\r\n"]))
    assert events == [ServerSentEvent("log", "x", None)]
