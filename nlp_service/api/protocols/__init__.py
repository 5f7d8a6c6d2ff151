"""The wire shapes of the APIs other clients speak: Hugging Face text-generation-inference (:mod:`.tgi`)
and OpenAI (:mod:`.openai`), one module each: request and response bodies, how a request becomes
sampling parameters, finish-reason maps; and server-sent-event framing, which both use."""

from ._sse import event, event_stream

__all__ = ["event", "event_stream"]
