"""Wire conventions beyond the .proto messages, shared by servers and clients.

A model server that gives up on a remote API it depends on answers UNAVAILABLE
with trailing metadata ERROR_SOURCE_KEY = ERROR_SOURCE_UPSTREAM. The server has
already retried the remote as often as its settings allow, so a client must not
retry such a call: UNAVAILABLE without the marker means the server itself is
loading, draining or unreachable, which a client does retry.

A server whose queue is full answers RESOURCE_EXHAUSTED with ERROR_SOURCE_KEY =
ERROR_SOURCE_QUEUE: backpressure, not a request too large, so a client may
retry it later (other RESOURCE_EXHAUSTED answers will fail again the same way).
"""

ERROR_SOURCE_KEY = "seedbench-error-source"
ERROR_SOURCE_UPSTREAM = "upstream"
ERROR_SOURCE_QUEUE = "queue"

# Info.details keys by which a server says what its Score cannot do, with a value
# starting REFUSED and the reason; a client refuses such a run before sending a question.
# Absent: the request field is honoured.
DETAIL_SCORE_END_OF_TURN = "score_end_of_turn"  # ScoreRequest.include_end_of_turn
DETAIL_SCORE_RAW_PROMPT = "score_raw_prompt"  # ScoreRequest.raw_prompt
REFUSED = "refused"
