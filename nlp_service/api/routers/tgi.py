"""Text generation in Hugging Face TGI's shape: ``/v1/generate`` and ``/v1/generate_stream`` (server-sent
events). Decoding runs in the model's generation worker, batched continuously."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from ..deps import GenerationDep
from ..protocols import event_stream, tgi

router = APIRouter(prefix="/v1", tags=["generation"])


@router.post("/generate", response_model=tgi.GenerateResponse, response_model_exclude_none=True,
             summary="Generate text (Hugging Face text-generation-inference shape)")
async def generate(body: tgi.GenerateRequest, generation: GenerationDep) -> tgi.GenerateResponse:
    model = generation.model(body.model)
    started = await generation.start(model, body.inputs, tgi.sampling_params(body.parameters))
    return await tgi.response(body, started)


@router.post("/generate_stream", summary="Generate text as server-sent events (TGI shape), one event per token")
async def generate_stream(body: tgi.GenerateRequest, generation: GenerationDep) -> StreamingResponse:
    model = generation.model(body.model)
    started = await generation.start(model, body.inputs, tgi.sampling_params(body.parameters))
    return event_stream(tgi.events(body, started))
