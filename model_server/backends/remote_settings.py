"""Settings of the remote backends (openai, vllm): one declaration, converted by settings.parse."""

from __future__ import annotations

from dataclasses import dataclass

from model_server.backends.settings import setting

SCORE_MODES = ("completions-echo", "chat-letter")
CAPABILITIES = ("score", "generate", "generate_image")


@dataclass(frozen=True)
class OpenAISettings:
    base_url: str = setting("", "API root; empty: $OPENAI_BASE_URL, else https://api.openai.com/v1")
    api_key_env: str = setting("OPENAI_API_KEY", "environment variable holding the API key; "
                                                 "unset or empty: no Authorization header")
    api_key_file: str = setting("", "file holding the API key (first line); wins over "
                                    "api_key_env. Keys are never taken from the command line")
    score_mode: str = setting("chat-letter", "chat-letter (first-token top_logprobs of A/B/C/D) "
                                             "or completions-echo (echoed option log-probs)")
    capabilities: str = setting("score,generate", "what the remote supports, from score, "
                                                  "generate, generate_image")
    concurrency: int = setting(8, "most HTTP calls in flight; halved on a 429, regained slowly")
    timeout_s: float = setting(120.0, "socket timeout of each HTTP call")
    max_retries: int = setting(4, "retries one question may spend (408/409/429/5xx, timeouts, "
                                  "resets, malformed answers), shared by its HTTP requests")
    question_timeout_s: float = setting(100.0, "time one question's calls and retries may take; "
                                               "keep it below the evaluator's --deadline-s")
    backoff_s: float = setting(1.0, "backoff step: a retry waits uniform(0, backoff_s * 2**n), "
                                    "capped at 60 s; Retry-After from the server wins")
    top_logprobs: int = setting(20, "K of top_logprobs in chat-letter mode")
    prompt_template: str = setting("{question}\nAnswer:", "completions-echo prompt; must contain "
                                                          "{question}; a literal \\n is a newline")
    option_prefix: str = setting(" ", "text between the prompt and the option (completions-echo)")
    echo_max_tokens: int = setting(0, "max_tokens of completions-echo requests")
    text_only: bool = setting(False, "completions-echo: drop images instead of refusing them")
    image_detail: str = setting("", "low, high or auto for image parts; empty: not sent")
    image_format: str = setting("png", "png or jpeg for the images sent")
    max_tokens_field: str = setting("max_tokens", "e.g. max_completion_tokens for models that "
                                                  "reject max_tokens")
    image_model: str = setting("", "model for /v1/images/generations; empty: the model id")
    image_base_url: str = setting("", "API root of the images endpoint when it is another "
                                      "service (a composite model); empty: base_url")
    image_api_key_env: str = setting("", "key variable for image_base_url; empty: api_key_env")
    image_api_key_file: str = setting("", "key file for image_base_url; empty: api_key_file")
    image_size: str = setting("", "e.g. 1024x1024; empty: not sent")
    image_response_format: str = setting("b64_json", "empty: not sent (a returned url is fetched)")
    max_images: int = setting(16, "images per prompt the server accepts")
    max_output_tokens: int = setting(0, "largest max_new_tokens a request may ask for (the remote "
                                        "model's output limit); 0: the server's --max-new-tokens")
    max_prompt_chars: int = setting(100_000, "characters of prompt text plus options one request "
                                             "may send; 0: no bound")
    revision: str = setting("", "free text hashed into the fingerprint: set it when the remote "
                                "model changed behind the same id")
    check_at_start: bool = setting(True, "GET models at start-up: an unreachable API or a "
                                         "refused key stops the server with one line")

    def __post_init__(self) -> None:
        """Refuse values that convert but make no sense, naming the setting."""
        if self.score_mode not in SCORE_MODES:
            raise ValueError(f"score_mode must be one of {', '.join(SCORE_MODES)}, "
                             f"got {self.score_mode!r}")
        unknown = sorted(self.capability_set() - set(CAPABILITIES))
        if unknown:
            raise ValueError(f"unknown capabilities {unknown}; choose from {', '.join(CAPABILITIES)}")
        if self.image_format not in ("png", "jpeg"):
            raise ValueError(f"image_format must be png or jpeg, got {self.image_format!r}")
        if "{question}" not in self.prompt_template:
            raise ValueError("prompt_template must contain {question}")
        for name in ("max_output_tokens", "max_prompt_chars"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0: no bound), got {getattr(self, name)}")

    def capability_set(self) -> set[str]:
        return {c.strip() for c in self.capabilities.split(",") if c.strip()}


@dataclass(frozen=True)
class VLLMSettings(OpenAISettings):
    """vLLM's defaults: a local server, PPL through echoed prompt log-probs.

    A separate key variable, so a real OpenAI key is never sent to a self-hosted
    server by accident; vLLM rejects max_tokens=0, so echo requests generate one
    token, which the scorer leaves out.
    """

    base_url: str = setting("http://127.0.0.1:8000/v1", "API root of the vLLM server")
    api_key_env: str = setting("VLLM_API_KEY", "environment variable holding the API key; "
                                               "unset or empty: no Authorization header")
    score_mode: str = setting("completions-echo", "completions-echo (echoed option log-probs) "
                                                  "or chat-letter (first-token top_logprobs)")
    echo_max_tokens: int = setting(1, "max_tokens of completions-echo requests (vLLM needs >= 1)")
