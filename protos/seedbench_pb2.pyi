from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScoringWindow(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCORING_WINDOW_OPTION_TOKENS: _ClassVar[ScoringWindow]
    SCORING_WINDOW_LAST_OPTION_LENGTH: _ClassVar[ScoringWindow]
    SCORING_WINDOW_LENGTH_DIFFERENCE: _ClassVar[ScoringWindow]

class ImageText(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_TEXT_TEMPLATE_MARKER: _ClassVar[ImageText]
    IMAGE_TEXT_MODEL_TOKEN: _ClassVar[ImageText]

class PromptTokenization(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROMPT_TOKENIZATION_WHOLE: _ClassVar[PromptTokenization]
    PROMPT_TOKENIZATION_SPLIT_AT_IMAGES: _ClassVar[PromptTokenization]
SCORING_WINDOW_OPTION_TOKENS: ScoringWindow
SCORING_WINDOW_LAST_OPTION_LENGTH: ScoringWindow
SCORING_WINDOW_LENGTH_DIFFERENCE: ScoringWindow
IMAGE_TEXT_TEMPLATE_MARKER: ImageText
IMAGE_TEXT_MODEL_TOKEN: ImageText
PROMPT_TOKENIZATION_WHOLE: PromptTokenization
PROMPT_TOKENIZATION_SPLIT_AT_IMAGES: PromptTokenization

class Image(_message.Message):
    __slots__ = ("data", "sha256")
    DATA_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    sha256: str
    def __init__(self, data: _Optional[bytes] = ..., sha256: _Optional[str] = ...) -> None: ...

class Prompt(_message.Message):
    __slots__ = ("text", "images")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    text: str
    images: _containers.RepeatedCompositeFieldContainer[Image]
    def __init__(self, text: _Optional[str] = ..., images: _Optional[_Iterable[_Union[Image, _Mapping]]] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Capabilities(_message.Message):
    __slots__ = ("score", "generate", "generate_image", "score_features")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    GENERATE_FIELD_NUMBER: _ClassVar[int]
    GENERATE_IMAGE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FEATURES_FIELD_NUMBER: _ClassVar[int]
    score: bool
    generate: bool
    generate_image: bool
    score_features: ScoreFeatures
    def __init__(self, score: _Optional[bool] = ..., generate: _Optional[bool] = ..., generate_image: _Optional[bool] = ..., score_features: _Optional[_Union[ScoreFeatures, _Mapping]] = ...) -> None: ...

class ImagePreprocessing(_message.Message):
    __slots__ = ("mode", "size", "interpolation", "mean", "std")
    class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        MODE_MODEL_PROCESSOR: _ClassVar[ImagePreprocessing.Mode]
        MODE_SQUASH: _ClassVar[ImagePreprocessing.Mode]
    MODE_MODEL_PROCESSOR: ImagePreprocessing.Mode
    MODE_SQUASH: ImagePreprocessing.Mode
    class Interpolation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        INTERPOLATION_BICUBIC: _ClassVar[ImagePreprocessing.Interpolation]
    INTERPOLATION_BICUBIC: ImagePreprocessing.Interpolation
    MODE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    INTERPOLATION_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    mode: ImagePreprocessing.Mode
    size: int
    interpolation: ImagePreprocessing.Interpolation
    mean: _containers.RepeatedScalarFieldContainer[float]
    std: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, mode: _Optional[_Union[ImagePreprocessing.Mode, str]] = ..., size: _Optional[int] = ..., interpolation: _Optional[_Union[ImagePreprocessing.Interpolation, str]] = ..., mean: _Optional[_Iterable[float]] = ..., std: _Optional[_Iterable[float]] = ...) -> None: ...

class Unsupported(_message.Message):
    __slots__ = ("feature", "reason")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    feature: str
    reason: str
    def __init__(self, feature: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ScoreFeatures(_message.Message):
    __slots__ = ("option_texts", "raw_prompt", "end_of_turn", "scoring_windows", "image_preprocessing", "image_texts", "tokenizations", "option_affixes", "unsupported")
    OPTION_TEXTS_FIELD_NUMBER: _ClassVar[int]
    RAW_PROMPT_FIELD_NUMBER: _ClassVar[int]
    END_OF_TURN_FIELD_NUMBER: _ClassVar[int]
    SCORING_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_PREPROCESSING_FIELD_NUMBER: _ClassVar[int]
    IMAGE_TEXTS_FIELD_NUMBER: _ClassVar[int]
    TOKENIZATIONS_FIELD_NUMBER: _ClassVar[int]
    OPTION_AFFIXES_FIELD_NUMBER: _ClassVar[int]
    UNSUPPORTED_FIELD_NUMBER: _ClassVar[int]
    option_texts: bool
    raw_prompt: bool
    end_of_turn: bool
    scoring_windows: _containers.RepeatedScalarFieldContainer[ScoringWindow]
    image_preprocessing: _containers.RepeatedScalarFieldContainer[ImagePreprocessing.Mode]
    image_texts: _containers.RepeatedScalarFieldContainer[ImageText]
    tokenizations: _containers.RepeatedScalarFieldContainer[PromptTokenization]
    option_affixes: bool
    unsupported: _containers.RepeatedCompositeFieldContainer[Unsupported]
    def __init__(self, option_texts: _Optional[bool] = ..., raw_prompt: _Optional[bool] = ..., end_of_turn: _Optional[bool] = ..., scoring_windows: _Optional[_Iterable[_Union[ScoringWindow, str]]] = ..., image_preprocessing: _Optional[_Iterable[_Union[ImagePreprocessing.Mode, str]]] = ..., image_texts: _Optional[_Iterable[_Union[ImageText, str]]] = ..., tokenizations: _Optional[_Iterable[_Union[PromptTokenization, str]]] = ..., option_affixes: _Optional[bool] = ..., unsupported: _Optional[_Iterable[_Union[Unsupported, _Mapping]]] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_images", "max_message_bytes", "max_batch_size", "max_wait_ms", "suggested_in_flight", "context_tokens", "max_option_tokens")
    MAX_IMAGES_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    SUGGESTED_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_OPTION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    max_images: int
    max_message_bytes: int
    max_batch_size: int
    max_wait_ms: int
    suggested_in_flight: int
    context_tokens: int
    max_option_tokens: int
    def __init__(self, max_images: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., max_batch_size: _Optional[int] = ..., max_wait_ms: _Optional[int] = ..., suggested_in_flight: _Optional[int] = ..., context_tokens: _Optional[int] = ..., max_option_tokens: _Optional[int] = ...) -> None: ...

class InfoResponse(_message.Message):
    __slots__ = ("name", "backend", "fingerprint", "capabilities", "limits", "details")
    class DetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    name: str
    backend: str
    fingerprint: str
    capabilities: Capabilities
    limits: Limits
    details: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., backend: _Optional[str] = ..., fingerprint: _Optional[str] = ..., capabilities: _Optional[_Union[Capabilities, _Mapping]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., details: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("request_id", "prompt", "options", "include_end_of_turn", "raw_prompt", "scoring_window", "image_preprocessing", "image_text", "tokenization", "option_prefix", "option_suffix")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_END_OF_TURN_FIELD_NUMBER: _ClassVar[int]
    RAW_PROMPT_FIELD_NUMBER: _ClassVar[int]
    SCORING_WINDOW_FIELD_NUMBER: _ClassVar[int]
    IMAGE_PREPROCESSING_FIELD_NUMBER: _ClassVar[int]
    IMAGE_TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKENIZATION_FIELD_NUMBER: _ClassVar[int]
    OPTION_PREFIX_FIELD_NUMBER: _ClassVar[int]
    OPTION_SUFFIX_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    prompt: Prompt
    options: _containers.RepeatedScalarFieldContainer[str]
    include_end_of_turn: bool
    raw_prompt: bool
    scoring_window: ScoringWindow
    image_preprocessing: ImagePreprocessing
    image_text: ImageText
    tokenization: PromptTokenization
    option_prefix: str
    option_suffix: str
    def __init__(self, request_id: _Optional[str] = ..., prompt: _Optional[_Union[Prompt, _Mapping]] = ..., options: _Optional[_Iterable[str]] = ..., include_end_of_turn: _Optional[bool] = ..., raw_prompt: _Optional[bool] = ..., scoring_window: _Optional[_Union[ScoringWindow, str]] = ..., image_preprocessing: _Optional[_Union[ImagePreprocessing, _Mapping]] = ..., image_text: _Optional[_Union[ImageText, str]] = ..., tokenization: _Optional[_Union[PromptTokenization, str]] = ..., option_prefix: _Optional[str] = ..., option_suffix: _Optional[str] = ...) -> None: ...

class OptionScore(_message.Message):
    __slots__ = ("logprob_sum", "num_tokens")
    LOGPROB_SUM_FIELD_NUMBER: _ClassVar[int]
    NUM_TOKENS_FIELD_NUMBER: _ClassVar[int]
    logprob_sum: float
    num_tokens: int
    def __init__(self, logprob_sum: _Optional[float] = ..., num_tokens: _Optional[int] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("requests", "retries", "prompt_tokens", "completion_tokens")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    requests: int
    retries: int
    prompt_tokens: int
    completion_tokens: int
    def __init__(self, requests: _Optional[int] = ..., retries: _Optional[int] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ("request_id", "scores", "unparsed", "unparsed_reason", "usage")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    UNPARSED_FIELD_NUMBER: _ClassVar[int]
    UNPARSED_REASON_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    scores: _containers.RepeatedCompositeFieldContainer[OptionScore]
    unparsed: bool
    unparsed_reason: str
    usage: Usage
    def __init__(self, request_id: _Optional[str] = ..., scores: _Optional[_Iterable[_Union[OptionScore, _Mapping]]] = ..., unparsed: _Optional[bool] = ..., unparsed_reason: _Optional[str] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("request_id", "prompt", "max_new_tokens", "temperature", "seed")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    prompt: Prompt
    max_new_tokens: int
    temperature: float
    seed: int
    def __init__(self, request_id: _Optional[str] = ..., prompt: _Optional[_Union[Prompt, _Mapping]] = ..., max_new_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., seed: _Optional[int] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("request_id", "text", "usage")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    text: str
    usage: Usage
    def __init__(self, request_id: _Optional[str] = ..., text: _Optional[str] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ...) -> None: ...

class GenerateImageRequest(_message.Message):
    __slots__ = ("request_id", "prompt", "seed", "with_text", "max_new_tokens")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    WITH_TEXT_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    prompt: Prompt
    seed: int
    with_text: bool
    max_new_tokens: int
    def __init__(self, request_id: _Optional[str] = ..., prompt: _Optional[_Union[Prompt, _Mapping]] = ..., seed: _Optional[int] = ..., with_text: _Optional[bool] = ..., max_new_tokens: _Optional[int] = ...) -> None: ...

class GenerateImageResponse(_message.Message):
    __slots__ = ("request_id", "image", "text", "usage")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    image: Image
    text: str
    usage: Usage
    def __init__(self, request_id: _Optional[str] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., text: _Optional[str] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ...) -> None: ...
