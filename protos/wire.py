"""Wire conventions beyond the .proto messages, shared by servers and clients.

A model server that gives up on a remote API it depends on answers UNAVAILABLE
with trailing metadata ERROR_SOURCE_KEY = ERROR_SOURCE_UPSTREAM. The server has
already retried the remote as often as its settings allow, so a client must not
retry such a call: UNAVAILABLE without the marker means the server itself is
loading, draining or unreachable, which a client does retry.

A server whose queue is full answers RESOURCE_EXHAUSTED with ERROR_SOURCE_KEY =
ERROR_SOURCE_QUEUE: backpressure, not a request too large, so a client may
retry it later (other RESOURCE_EXHAUSTED answers will fail again the same way).

What a server's Score honours is typed (Info.capabilities.score_features);
`legacy_score_features` stands in for a server older than those fields.
Info.details is informational only: no client decision reads it.
"""

from __future__ import annotations

from protos import seedbench_pb2 as pb

ERROR_SOURCE_KEY = "seedbench-error-source"
ERROR_SOURCE_UPSTREAM = "upstream"
ERROR_SOURCE_QUEUE = "queue"


def legacy_score_features() -> pb.ScoreFeatures:
    """What every server offered before Info carried score_features: option texts, raw
    prompts, the end-of-turn token; the model's processor, the option-tokens window, whole
    tokenisation and the template's image marker."""
    return pb.ScoreFeatures(
        option_texts=True, raw_prompt=True, end_of_turn=True,
        scoring_windows=[pb.SCORING_WINDOW_OPTION_TOKENS],
        image_preprocessing=[pb.ImagePreprocessing.MODE_MODEL_PROCESSOR],
        image_texts=[pb.IMAGE_TEXT_TEMPLATE_MARKER],
        tokenizations=[pb.PROMPT_TOKENIZATION_WHOLE])


def score_features(info: pb.InfoResponse) -> pb.ScoreFeatures:
    """The server's typed Score features (the legacy set for a server that sends none)."""
    caps = info.capabilities
    return caps.score_features if caps.HasField("score_features") else legacy_score_features()
