"""Chat prompts as token ids: role turns from a template string, speech spliced in at <|audio|> placeholders.

Real models each have their own chat markup (Qwen-style <|im_start|> for VITA-Audio, Kimi-Audio's role tokens);
a template string covers them without model-specific code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from wavalign.data.schema import AUDIO_PLACEHOLDER


@dataclass
class ChatTemplate:
    """A chat template as strings: how messages become prompt text before tokenization.

    Args:
        turn: Format of one message, with {role} and {content} (required) placeholders; set it to the model's
            own chat markup (e.g. Qwen-style "<|im_start|>{role}\\n{content}<|im_end|>\\n").
        generation_prefix: Text that opens the assistant's reply, put after the last message.
        bos: Text put before the first message (e.g. a begin-of-sequence token); empty for none.
        speech_system: The system message put first when a conversation with speech in it has none (VITA-Audio's
            speech-to-speech prompts always start with one; its inference script and the WavAlign trainer add it);
            None adds nothing.
        speech_only_user_prefix: Text put right before the audio placeholder that ends a user message. VITA-Audio's
            inference script (tools/inference_sts.py, run_infer) sends the user turn as message + "\\n<|audio|>"
            ("\\n<|audio|>" for speech-to-speech): with "\\n" here, data holding a bare "<|audio|>" or
            "question <|audio|>" (spaces before the placeholder dropped) renders as upstream's; content holding the
            newline already is left as it is. Empty adds nothing.
    """

    turn: str = "<|{role}|> {content} "
    generation_prefix: str = "<|assistant|>"
    bos: str = ""
    speech_system: str | None = None
    speech_only_user_prefix: str = ""

    def __post_init__(self) -> None:
        if "{content}" not in self.turn:
            raise ValueError(f"chat template turn {self.turn!r} must contain {{content}}")


def _before_audio(content: str, prefix: str) -> str:
    """content with `prefix` right before a placeholder that ends it (spaces before the placeholder dropped), unless
    the prefix is there already; content that does not end with the placeholder is left as the data writes it."""
    if not content.endswith(AUDIO_PLACEHOLDER):
        return content
    before = content[: -len(AUDIO_PLACEHOLDER)].rstrip(" ")
    return content if before.endswith(prefix) else before + prefix + AUDIO_PLACEHOLDER


def render_prompt(
    template: ChatTemplate,
    messages: Sequence[dict[str, str]],
    speech: Sequence[Sequence[int]],
    encode_text: Callable[[str], list[int]],
    encode_speech: Callable[[Sequence[int]], list[int]],
) -> list[int]:
    """Token ids of the prompt; speech[i] fills the i-th placeholder in message order."""
    has_speech = any(AUDIO_PLACEHOLDER in m["content"] for m in messages)
    if template.speech_system and has_speech and (not messages or messages[0]["role"] != "system"):
        messages = [{"role": "system", "content": template.speech_system}, *messages]
    if template.speech_only_user_prefix:
        messages = [
            {**m, "content": _before_audio(m["content"], template.speech_only_user_prefix)}
            if m["role"] == "user"
            else m
            for m in messages
        ]
    text = template.bos + "".join(template.turn.format(role=m["role"], content=m["content"]) for m in messages)
    text += template.generation_prefix
    pieces = text.split(AUDIO_PLACEHOLDER)
    if len(pieces) - 1 != len(speech):
        raise ValueError(f"prompt has {len(pieces) - 1} audio placeholders but {len(speech)} speech segments")
    ids: list[int] = []
    for i, piece in enumerate(pieces):
        if piece:
            ids.extend(encode_text(piece))
        if i < len(speech):
            ids.extend(encode_speech(speech[i]))
    return ids
