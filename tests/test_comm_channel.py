"""js/comm_channel.js in Chromium, against a stand-in for the widget's model: how the view's bytes are paced.

One message to the kernel is in flight at a time; what noVNC sends meanwhile
goes as one message once the kernel's idle status for the previous one comes
back (or, where a host passes no status back, after a short timer), in order,
with every byte as noVNC handed it over.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

SOURCE = Path(__file__).resolve().parents[1] / "js" / "comm_channel.js"

#: A model that records what the channel sends; ``status(i, state)`` plays the kernel's status for message i.
SETUP = """
(source) => {
    const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
    return import(url).then(({ CommChannel }) => {
        const sent = [];
        const handlers = {};
        const model = {
            send(content, callbacks, buffers) {
                sent.push({ content, callbacks, bytes: (buffers ?? []).map((b) => Array.from(new Uint8Array(b))) });
            },
            on(event, callback) { handlers[event] = callback; },
            off(event) { delete handlers[event]; },
        };
        const channel = new CommChannel(model, new AbortController().signal);
        window.t = {
            channel,
            sent,
            open() { handlers["msg:custom"]({ dw: "rfb-opened", view: channel.id }, []); },
            status(i, state) { sent[i].callbacks.iopub.status({ content: { execution_state: state } }); },
            summary() { return sent.map((m) => [m.content.dw, m.content.seq ?? null, m.bytes.flat()]); },
        };
    });
}
"""


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.goto("about:blank")
    page.evaluate(SETUP, SOURCE.read_text())
    page.wait_for_function("() => t.sent.length === 1")  # rfb-open, once the constructor's caller has run
    page.evaluate("() => t.open()")
    yield page
    context.close()


def test_bytes_sent_while_one_message_is_in_flight_go_together_after_its_idle(page):
    # One synchronous step each: the channel's timers cannot run in between.
    first, held, after = page.evaluate(
        """() => {
            t.channel.send(new Uint8Array([1]));
            const first = t.summary();
            // noVNC hands over a view into its reusable queue and overwrites it afterwards.
            const queue = new Uint8Array([2, 3, 9]);
            t.channel.send(queue.subarray(0, 2));
            queue[0] = 99;
            t.channel.send(new Uint8Array([4]));
            t.status(1, "busy");
            const held = t.sent.length;
            t.status(1, "idle");
            return [first, held, t.summary()];
        }"""
    )
    assert first == [["rfb-open", None, []], ["rfb-data", 0, [1]]]
    assert held == 2, "nothing more while the first message is in flight"
    assert after[2:] == [["rfb-data", 1, [2, 3, 4]]]
    # A close comes after what noVNC sent before it, even with a message in flight.
    page.evaluate("() => { t.channel.send(new Uint8Array([5])); t.channel.close(); }")
    assert page.evaluate("() => t.summary()")[3:] == [["rfb-data", 2, [5]], ["rfb-close", 3, []]]


def test_a_host_that_passes_no_status_back_is_paced_by_a_timer(page):
    assert (
        page.evaluate(
            "() => { t.channel.send(new Uint8Array([1])); t.channel.send(new Uint8Array([2])); return t.sent.length; }"
        )
        == 2
    )
    page.wait_for_function("() => t.sent.length === 3", timeout=10_000)
    assert page.evaluate("() => t.summary()")[1:] == [["rfb-data", 0, [1]], ["rfb-data", 1, [2]]]


def test_acknowledgements_ride_on_the_views_data(page):
    """What noVNC consumed is acknowledged on the next message; none goes on its own while data does."""
    ack, held, data = page.evaluate(
        """() => {
            const h = t.channel;
            // Past a quarter of the kernel's window: acknowledged at once, in a message of its own.
            h._on_custom({ dw: "rfb-data", view: h.id }, [new DataView(new ArrayBuffer(600 * 1024))]);
            const ack = t.sent[1].content;
            h._on_custom({ dw: "rfb-data", view: h.id }, [new DataView(new ArrayBuffer(10))]);
            h.send(new Uint8Array([7]));
            const held = t.sent.length;
            t.status(1, "idle");
            return [ack, held, t.sent[2].content];
        }"""
    )
    assert (ack["dw"], ack["bytes"], ack["messages"]) == ("rfb-ack", 600 * 1024, 1)
    assert held == 2, "the ack in flight holds the data"
    assert (data["dw"], data["seq"], data["bytes"], data["messages"]) == ("rfb-data", 0, 10, 1)
