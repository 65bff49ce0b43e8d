"""A ChatML chat template that can describe tools and tool calls, for models whose own cannot.

SmolLM2's GGUF carries a ChatML template with no tool syntax: llama.cpp's server then leaves
`tools` out of the prompt, adds no grammar and parses no tool calls. With this template its
template analysis finds a JSON tool-call format (`<tool_call>{"name": ..., "arguments": ...}
</tool_call>`, the Hermes/Qwen convention, which small ChatML models have seen), so
`tool_choice: "required"` constrains the output to a call to one of the tools and the reply
comes back as `tool_calls`. Without tools the prompt is the model's own, word for word.
"""

from __future__ import annotations

# What a tool call opens and closes with in CHATML_TOOLS; forced_tool.py relies on both.
TOOL_CALL_OPEN = "<tool_call>\n"
TOOL_CALL_CLOSE = "</tool_call>"

CHATML_TOOLS = """\
{%- if messages[0].role == 'system' -%}
{%- set system = messages[0].content -%}{%- set rest = messages[1:] -%}
{%- else -%}
{%- set system = 'You are a helpful AI assistant named SmolLM, trained by Hugging Face' -%}
{%- set rest = messages -%}
{%- endif -%}
<|im_start|>system
{{ system }}
{%- if tools %}

You can call these functions. Each one is described as JSON:
<tools>
{%- for tool in tools %}
{{ tool | tojson }}
{%- endfor %}
</tools>
To call one, answer with a JSON object naming the function and its arguments, \
inside <tool_call></tool_call> tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call>
{%- endif %}<|im_end|>
{% for message in rest -%}
{%- if message.role == 'assistant' and message.tool_calls -%}
<|im_start|>assistant
{%- if message.content %}
{{ message.content }}
{%- endif %}
{%- for call in message.tool_calls %}
<tool_call>
{"name": "{{ call.function.name }}", "arguments": \
{{ call.function.arguments if call.function.arguments is string \
else call.function.arguments | tojson }}}
</tool_call>
{%- endfor %}<|im_end|>
{% elif message.role == 'tool' -%}
<|im_start|>user
<tool_response>
{{ message.content }}
</tool_response><|im_end|>
{% else -%}
<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
<|im_start|>assistant
{% endif -%}
"""

# By name, as KnownModel.chat_template and llama_server's --chat-template give them.
TEMPLATES = {"chatml-tools": CHATML_TOOLS}
