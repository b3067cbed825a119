"""The built-in offline model: deterministic, no network, and a real participant in DSPy's loop.

It is a DSPy engine (``complete(Request) -> Response``, ``stream(Request)``) that reads the
prompt DSPy's ChatAdapter builds and writes the fields DSPy parses. In a ReAct step it picks a
tool from the user's words (or ``finish``) and pulls the tool's argument out of the sentence (the
arithmetic, the code, the text, the file, the memory query); in the final step it composes the
answer from the tools' observations, or, when no tool ran, a short answer of its own (greetings,
thanks, what it can do, what it understood and the closest tool). Its stream sends the text a word
at a time, so answers stream through DSPy's listeners like a hosted model's.
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from dspy.lm15 import Message, Response, TextPart, Usage

# CPU seconds spent in the offline model's latest calls (the evaluation reads and clears it): the
# thread's own CPU time, so waiting for a core on a busy machine is not counted as the model's.
MODEL_SECONDS: deque[float] = deque(maxlen=64)
# The most model time one reply may take (issue 19): the evaluation test holds every case to it.
MODEL_BUDGET_SECONDS = 0.05
FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n\[\[ ## \w+ ## \]\]|\Z)", re.S)
I = re.I  # noqa: E741 (short flag for the many patterns below)

# --- Small talk -------------------------------------------------------------------------------
_GREETING = re.compile(
    r"^\W*(hi|hello|hey|hiya|howdy|yo|greetings|good (morning|afternoon|evening|day)|hallo|bonjour|hola|ciao|"
    r"ol[aá]|salut|moin)\b",
    I,
)
_THANKS = re.compile(
    r"\b(thanks|thank you|thank u|thx|ty|cheers|much appreciated|merci|gracias|danke|obrigad[oa])\b", I
)
_CAPABILITIES = re.compile(
    r"\bwhat (can|could|do) you (do|help( me)? with)|what are you (able|good)|\bhelp\b|who are you|what are you\b|"
    r"how do(es)? (this|you) work|what tools|your (features|capabilities|skills)|what do you know how",
    I,
)
_HOW_ARE_YOU = re.compile(r"\bhow are (you|u)\b|how's it going|how are things", I)
_NOTE = re.compile(r"^\W*(please\s+)?(remember|note|keep in mind|don'?t forget)\b(\s+that)?\s*:?", I)

# --- Code -------------------------------------------------------------------------------------
_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n?(.*?)```", re.S | I)
_INLINE = re.compile(r"`([^`\n]+)`")
_RUN_VERB = re.compile(r"\b(run|execute|exec)\b", I)
_PYTHON = re.compile(r"\b(python3?|py)\b", I)
_CODE_LABEL = re.compile(r"(?:^|\b)(?:python3?|code|script)\s*:\s*(.+)$", re.S | I)
# Each alternative scans a bounded stretch (a loop header, a list, a call's arguments: a few hundred
# characters at most), never to the end of the message and back: a long pasted text must not cost
# more than one pass (see MODEL_BUDGET_SECONDS). Unbounded, "for each run in ..." in prose with
# no colon after it scanned to the end once per "for": 45 ms of CPU for 32,000 characters.
_CODE_LOOKING = re.compile(
    r"\w\s*\([^()\n]{0,500}\)|\w+\s*=\s*\S|\bimport\b|\bprint\b|\bdef\b|"
    r"\bfor\s+\w+(?:\s*,\s*\w+){0,10}\s+in\b[^\n:]{0,200}:|\[[^\[\]\n]{0,500}\]"
)
_CODE_FILLER = re.compile(
    r"^(?:(?:this|the following|following|that|my|some|a|the|python3?|py|code|script|snippet|program|line|"
    r"command|for me|please|quickly|in|with|using)\b\s*|:\s*)+",
    I,
)
_CODE_TAIL = re.compile(
    r"(?:\s+(?:in|with|using|on)\s+(?:python3?|py)\b.*|\s+for me\b.*|\s*,?\s*(?:please|thanks|thank you)\b.*|"
    r"\s+and (?:tell|show|give) me\b.*|\s+(?:and )?what (?:does it|is the) (?:print|output|result)s?\b.*)$",
    I | re.S,
)
_PYTHON_EXPRESSION = re.compile(r"[\d\s.+\-*/%()]+")
_CODE_FRAGMENT = re.compile(r"[A-Za-z_][\w.]*\s*\((?:[^()]|\([^()]*\))*\)")

# --- Files ------------------------------------------------------------------------------------
_FILE_WORDS = r"(file|csv|json|document|doc|attachment|upload|spreadsheet|table|data ?set|dataset|text file|notes)"
_FILE = re.compile(
    rf"\b(this|the|my|attached|uploaded|that|your|above|latest|last)\s+(\w+\s+)?{_FILE_WORDS}\b|\[attached file|"
    r"\b(i('ve| have)? (just )?(attached|uploaded|sent))\b|\b(what'?s|what is) in (it|there)\b|"
    r"\bhow many (rows|columns|lines|records|entries)\b|\bcolumns?\b|"
    r"\b[\w-]+\.(csv|json|txt|md|markdown|pdf|png|jpe?g)\b",
    I,
)
_FILENAME = re.compile(r"[\w.-]+\.(?:csv|json|txt|md|markdown|pdf|png|jpe?g)\b", I)
_ATTACHED = re.compile(r"\[Attached file: (.*?)\]")

# --- Memory -----------------------------------------------------------------------------------
_MEMORY_STRONG = re.compile(
    r"\b(remember|recall|remind me|did i (ever )?(say|mention|tell( you)?|talk|write|ask)|"
    r"what did i (say|tell( you)?|mention|write|ask|call|name)|i (said|told you|mentioned)|have i (told|mentioned)|"
    r"where did i (put|park|leave|say|stay|go)|what did (we|i) (decide|agree|plan|book))\b",
    I,
)
_MEMORY_WEAK = re.compile(
    r"\b(what|who|where|when|which)('s| is| was| were| are| did)? my\b|\bcalled\b|\bnamed\b|"
    r"\bwhere (does|do|did|is|was) (my|our)\b|\bmy \w+('s)? (name|birthday|address)\b|"
    r"\b(?-i:[Ww]here (?:does|did) [A-Z][a-z]+)\b|"
    r"\bdo you know (my|where|when|what)\b|\bname of (my|our)\b",
    I,
)
_MEMORY_SCAFFOLD = re.compile(
    r"\b(do you (still )?remember|can you remember|remember|do you recall|recall|remind me( of| what| about)?|"
    r"what did i (say|tell( you)?|mention|write|ask)|did i (ever )?(say|mention|tell( you)?|talk|write|ask)|"
    r"have i (told|mentioned)( you)?|i (said|told you|mentioned)|do you know|what('s| is| was| were| are)|"
    r"what did i|"
    r"who('s| is| was)|"
    r"where('s| is| was| does| do| did)|when('s| is| was)|which|again|can you|could you|please|tell me|"
    r"about|regarding|last (week|month|time|year)|yesterday|earlier|before|ago|you|me)\b|[?.!,]",
    I,
)

# --- Weather and the web ----------------------------------------------------------------------
_WEATHER = re.compile(
    r"\b(weather|temperature|forecast|raining|rain(y)?|snowing|sunny|humid(ity)?|windy|"
    r"how (hot|cold|warm) is it|is it (cold|hot|warm|freezing|snowing|sunny|windy)|degrees outside|umbrella)\b",
    I,
)
_WEATHER_WORDS = re.compile(
    r"\b(what'?s|what is|how'?s|how is|is it|will it|the|weather|temperature|forecast|like|going to|be|"
    r"raining|rainy|rain|snowing|sunny|humid(ity)?|windy|how|hot|cold|warm|degrees|outside|umbrella|"
    r"today|tomorrow|now|right|currently|at the moment|this (morning|afternoon|evening|week)|please|"
    r"tell me|can you|could you|check|need|do i|an?|for|in|at|of)\b|[?.!,]",
    I,
)
_WEB = re.compile(
    r"\b(search( the web| online| the internet)?( for)?|look (it )?up|google|latest news|news (about|on)|"
    r"find (out|information|info)( about| on)?|on the (web|internet)|online|who (is|was)(?! my\b)|"
    r"wikipedia)\b",
    I,
)
_WEB_WORDS = re.compile(
    r"\b(can you|could you|would you|please|for me|search( the web| online| the internet)?( for)?|"
    r"look (it )?up|google|find (out|information|info)( about| on)?|on the (web|internet)|online|"
    r"tell me|the latest|latest|news (about|on)|what'?s|wikipedia|thanks?)\b|[?!]",
    I,
)

# --- Text -------------------------------------------------------------------------------------
_TEXT_STRONG = re.compile(
    r"\bhow many (letters|characters|chars|words|sentences|paragraphs|times)\b|\bword ?count\b|"
    r"\bcount (the |all )?(words|letters|characters|sentences)\b|\b(upper|lower|title) ?case\b|"
    r"\b(all )?(caps|capitals|capital letters)\b|\bshout\b|\bkey ?words?\b|\bsummari[sz]e\b|\bsum up\b|\btl;?dr\b|"
    r"\breplace\b.+\bwith\b|\bhow many \w'?s\b|\bhow long is (this|the) (text|sentence|paragraph)\b",
    I,
)
_TEXT_WEAK = re.compile(r"\b(count|reading time|how long .* to read|shorten|main points)\b", I)
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|«([^»]+)»|(?<![\w])'([^']+?)'(?![\w])")

# --- Arithmetic -------------------------------------------------------------------------------
_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
_NUMBER_WORD = re.compile(
    rf"\b(?:(?:{'|'.join(_TENS)})(?:[- ](?:{'|'.join(_UNITS)}))?|{'|'.join(_UNITS)}|a dozen|dozen|a hundred|"
    r"hundred|thousand)(?:\s+(?:hundred|thousand)(?:\s+(?:and\s+)?(?:[a-z]+))?)?\b",
    I,
)
_MATH_TOKEN = (
    r"\d+(?:\.\d+)?\s*%?|\*\*|[-+*/^()!%\u00d7\u00f7]|"
    r"\b(?:plus|minus|times|multiplied by|divided by|over|x|mod(?:ulo)?|percent|of|squared|cubed|"
    r"to the power of|raised to(?: the power of)?|the power of|square root(?: of)?|cube root(?: of)?|sqrt|cbrt|"
    r"natural log(?:arithm)?(?: of)?|log(?:arithm)?(?: of)?|ln|sin|cos|tan|absolute value of|abs|"
    r"factorial(?: of)?|average|mean|median|sum|total|product|minimum|maximum|min|max|and|pi|the|by)\b|,"
)
_MATH_SPAN = re.compile(rf"(?:{_MATH_TOKEN})(?:\s*(?:{_MATH_TOKEN}))*", I)
_MATH_OPERATOR = re.compile(
    r"[-+*/^!%\u00d7\u00f7]|\b(plus|minus|times|multiplied|divided|over|x|mod|modulo|percent|squared|cubed|power|"
    r"root|sqrt|"
    r"cbrt|log|logarithm|ln|sin|cos|tan|abs|absolute|factorial|average|mean|median|sum|total|product|minimum|"
    r"maximum|min|max)\b",
    I,
)
_LIST_WORD = re.compile(r"^(?:the\s+)?(average|mean|median|sum|total|product|minimum|maximum|min|max)\b", I)
_LEADING_GLUE = re.compile(r"^(?:(?:and|of|by|the|over|x|,|percent|squared|cubed|[*/^!%\u00d7\u00f7+])\s*)+", I)
_TRAILING_GLUE = re.compile(
    r"(?:\s*(?:and|of|by|the|plus|minus|times|multiplied by|divided by|over|x|mod|to the power of|raised to|"
    r"square root|cube root|sqrt|log|ln|,|[-+*/^(\u00d7\u00f7]))+$",
    I,
)
_NUM = r"\d+(?:\.\d+)?"
# "multiply 12 by 13", "add 45 and 37", "subtract 3 from 10", "divide 100 by 8": the verb, the
# words between its operands, the operator, and whether the operands come the other way round.
_IMPERATIVE = (
    ("multiply", "by|and|with", "*", False),
    ("divide", "by", "/", False),
    ("add", "and|to|plus", "+", False),
    ("subtract|take away|take", "from", "-", True),
)


def _imperative(operator: str, swap: bool) -> Callable[[re.Match[str]], str]:
    def write(match: re.Match[str]) -> str:
        first, second = (match.group(2), match.group(1)) if swap else (match.group(1), match.group(2))
        return f"{first} {operator} {second}"

    return write


_WORD_PROBLEM_QUESTION = re.compile(r"\bhow (many|much)\b|\b(in total|altogether|in all|left|remain)\b|\?", I)
_PER_EACH = re.compile(r"\b(each|per|every|apiece|a piece)\b", I)
_SPLIT = re.compile(
    r"\b(split|share[sd]?|divided?|among|between|equally|groups? of)\b|"
    r"\bhow (many|much) (does|do|will|would|should|must) (each|every)\b|\beach (one |person )?(pays?|gets?|owes?)\b",
    I,
)
# The count a total is split between: "4 people", "6 kids", "3 of us", "among 6", "between 8".
_SHARERS_AFTER = re.compile(
    r"^\s*(?:\w+\s+)?(people|persons|friends|kids|children|students|guests|players|of us|ways|groups|teams)\b", I
)
_SHARERS_BEFORE = re.compile(r"\b(among|between|by|into)\s+$", I)
_TAKE_AWAY = re.compile(
    r"\b(give|gave|given|giving|eat|ate|eaten|lose|lost|sell|sold|spend|spent|remove[sd]?|take away|took|taken|"
    r"left|fewer|less|break|broke|drop(ped)?|use[sd]?|throw|threw|minus|away)\b",
    I,
)
_ADD = re.compile(
    r"\b(buy|bought|get|got|gets|more|add(ed|s)?|receive[sd]?|find|found|another|plus|in total|altogether|"
    r"together|join(ed)?|extra|gain(ed)?|pick(ed)?)\b",
    I,
)


# A long message (a pasted text) is read for what it asks at its start and end, where people write
# that ("summarize this: …", "… what's the total?"); the tools that work on the text itself (text
# work, code) still get all of it. Each pattern then scans at most about 2 * CUE_CHARS, so a
# message of MAX_MESSAGE_CHARS stays within MODEL_BUDGET_SECONDS.
CUE_CHARS = 1000


def _cue(message: str) -> str:
    if len(message) <= 2 * CUE_CHARS:
        return message
    return f"{message[:CUE_CHARS]}\n…\n{message[-CUE_CHARS:]}"


def fields(text: str) -> dict[str, str]:
    return {name: value.strip() for name, value in FIELD.findall(text)}


def _tools_offered(system: str) -> list[str]:
    match = re.search(r"`next_tool_name` \(Literal\[(.*?)\]\)", system)
    return re.findall(r"'([^']+)'", match.group(1)) if match else []


def _squash(text: str) -> str:
    return " ".join(text.split())


# --- Arguments --------------------------------------------------------------------------------


def _number_words(text: str) -> str:
    """'twenty five' -> '25', 'three hundred' -> '300', 'a dozen' -> '12'."""

    def value(match: re.Match[str]) -> str:
        words = re.findall(r"[a-z]+", match.group(0).lower())
        total, current = 0, 0
        for word in words:
            if word in ("a", "and"):
                continue
            if word == "dozen":
                current = (current or 1) * 12
            elif word == "hundred":
                current = (current or 1) * 100
            elif word == "thousand":
                total, current = total + (current or 1) * 1000, 0
            elif word in _UNITS:
                current += _UNITS[word]
            elif word in _TENS:
                current += _TENS[word]
            else:
                return match.group(0)
        return str(total + current)

    return _NUMBER_WORD.sub(value, text)


def _number_formats(text: str, *, listing: bool) -> str:
    """Thousands separators out, decimal commas to points: '1,250.5', '1.250,5' and '2,5' (not in lists)."""
    text = re.sub(r"(?<![\d.,])[$€£¥](?=\s*\d)|(?<=\d)\s*[$€£¥]", "", text)
    text = re.sub(r"\b\d{1,3}(?:\.\d{3})+,\d+\b", lambda m: m.group(0).replace(".", "").replace(",", "."), text)
    text = re.sub(r"\b\d{1,3}(?:,\d{3})+(?:\.\d+)?\b", lambda m: m.group(0).replace(",", ""), text)
    text = re.sub(r"\b\d{1,3}(?:\.\d{3}){2,}\b", lambda m: m.group(0).replace(".", ""), text)
    if not listing:
        text = re.sub(r"\b(\d+),(\d{1,2})\b(?!,)", r"\1.\2", text)
    return text


def arithmetic(message: str) -> str | None:
    """The arithmetic in a sentence ('Convert 25% of 80 into a number please' -> '25% of 80'), or None."""
    text = _number_words(message)
    listing = bool(re.search(r"\b(average|mean|median|sum|total|product|minimum|maximum|min|max)\b", text, I))
    text = _number_formats(text, listing=listing)
    text = re.sub(r"\b(half|a half) of\b", "0.5 *", text, flags=I)
    text = re.sub(r"\b(a )?(third|quarter) of\b", lambda m: {"third": "1/3 *", "quarter": "0.25 *"}[m.group(2)], text)
    text = re.sub(r"\b(double|twice)\s+(?=\d)", "2 * ", text, flags=I)
    text = re.sub(r"\btriple\s+(?=\d)", "3 * ", text, flags=I)
    text = re.sub(r"\b(?:the )?(square|cube) of (\d+(?:\.\d+)?)", r"\2 \1d", text, flags=I)
    text = re.sub(r"(?<![\d.])(\d+)\s*/\s*(\d+)\s+of\b", r"(\1/\2) *", text)
    for verb, between, operator, swap in _IMPERATIVE:
        text = re.sub(
            rf"\b(?:{verb})\s+({_NUM})\s+(?:{between})\s+({_NUM})", _imperative(operator, swap), text, flags=I
        )
    text = re.sub(r"(\d+(?:\.\d+)?)\s*%\s*off\s+(\d+(?:\.\d+)?)", r"\2 - \1% of \2", text, flags=I)
    text = re.sub(
        r"(\d+(?:\.\d+)?)\s*%\s*(?:tip|discount|tax|vat|interest|commission)?\s*(?:on|of|from)\s+",
        r"\1% of ",
        text,
        flags=I,
    )
    text = re.sub(r"(?<=\d)\s*(?:dollars|euros?|pounds|bucks|usd|eur|gbp|quid)\b", "", text, flags=I)
    text = re.sub(r"\b(?:square|sq)\s+root\b", "square root", text, flags=I)
    best: str | None = None
    for span in _MATH_SPAN.finditer(text):
        candidate = span.group(0)
        if not _LIST_WORD.match(candidate.strip()):
            candidate = _LEADING_GLUE.sub("", candidate.strip())
        candidate = _TRAILING_GLUE.sub("", candidate).strip()
        candidate = re.sub(r"^(?:the\s+)+", "", candidate, flags=I)
        if not re.search(r"\d|\bpi\b", candidate) or not _MATH_OPERATOR.search(candidate):
            continue
        if candidate.count("(") != candidate.count(")"):
            candidate = candidate.strip("()")
        if best is None or len(re.findall(r"\d+", candidate)) > len(re.findall(r"\d+", best)):
            best = candidate
    named = re.search(
        r"\b(average|mean|median|sum|total|product|minimum|maximum)\b", re.sub(r"\bin total\b", "", text), I
    )
    if named and (best is None or not _LIST_WORD.match(best)):
        # "My scores were 72, 85 and 91, what's the mean?": the list comes before its word.
        numbers = re.findall(r"-?\d+(?:\.\d+)?", text)
        if len(numbers) >= 2:
            return f"{named.group(1).lower()} of {', '.join(numbers)}"
    return best


def _total_and_sharers(text: str, first: str, second: str) -> tuple[str, str]:
    """The total and what divides it: the number of people ("we're 4 people and the bill is 86",
    "24 sweets among 6 kids"); with no such word, the larger shared by the smaller ("3 apples
    cost 6 euros, how much does each cost?")."""
    at_first = text.index(first)
    at_second = text.index(second, at_first + len(first))

    def shares(at: int, number: str) -> bool:
        return bool(_SHARERS_BEFORE.search(text[:at]) or _SHARERS_AFTER.match(text[at + len(number) :]))

    if shares(at_second, second):
        return first, second
    if shares(at_first, first) or float(first) < float(second):
        return second, first
    return first, second


def word_problem(message: str) -> str | None:
    """A one-step word problem with two numbers: 'I have 3 apples and buy 5 more' -> '3 + 5'."""
    text = _number_formats(_number_words(message), listing=False)
    numbers = re.findall(r"\d+(?:\.\d+)?", text)
    if len(numbers) != 2 or not _WORD_PROBLEM_QUESTION.search(text):
        return None
    first, second = numbers
    if _SPLIT.search(text):
        operator = "/"
        first, second = _total_and_sharers(text, first, second)
    elif _PER_EACH.search(text):
        operator = "*"
    elif _TAKE_AWAY.search(text):
        operator = "-"
    elif _ADD.search(text):
        operator = "+"
    else:
        return None
    return f"{first} {operator} {second}"


def _printed(code: str) -> str:
    """Arithmetic asked of Python ("run 2+2 in python", "python: 2**10") is printed, else it would
    run and show nothing."""
    if _PYTHON_EXPRESSION.fullmatch(code) and re.search(r"\d\s*[-+*/%]", code):
        return f"print({code})"
    return code


def extract_code(message: str) -> str | None:
    """The code a message asks to run: fenced, in backticks, after 'python:', or the code-looking tail
    after 'run'/'execute' ('Could you run print(3 * 7) in Python?' -> 'print(3 * 7)'). None when none."""
    fenced = _FENCE.search(message)
    if fenced:
        return fenced.group(1).strip("\n")
    asks_to_run = bool(_RUN_VERB.search(message)) or bool(_PYTHON.search(message))
    inline = _INLINE.findall(message)
    if inline and asks_to_run:
        return "\n".join(inline) if len(inline) > 1 and all("\n" not in i for i in inline) else inline[0]
    labelled = _CODE_LABEL.search(message)
    if labelled and labelled.group(1).strip():
        return _printed(labelled.group(1).strip())
    verb = _RUN_VERB.search(message)
    if verb:
        tail = _CODE_FILLER.sub("", message[verb.end() :].strip())
        tail = _CODE_TAIL.sub("", tail).strip()
        tail = re.sub(r"[?!]+$", "", tail).strip()
        if tail and _CODE_LOOKING.search(tail):
            return tail
        if _PYTHON.search(message) and _printed(tail) != tail:
            return _printed(tail)
    if _PYTHON.search(message):
        fragment = _CODE_FRAGMENT.search(message)
        wants_output = _RUN_VERB.search(message) or re.search(r"\b(print|output|return|evaluate)", message, I)
        if fragment and wants_output:
            return fragment.group(0)
    return None


def _text_argument(message: str) -> str:
    """The text to work on: after a colon, in quotes, or the word after 'in'."""
    if ":" in message:
        head, body = message.split(":", 1)
        if body.strip() and not re.search(r"https?$", head):
            return body.strip().strip("\"“”'")
    quoted = _QUOTED.search(message)
    if quoted:
        return next(group for group in quoted.groups() if group)
    shaped = re.search(
        r"\b(?:make|turn|convert|change|put|write)\s+(.+?)\s+(?:in(?:to)?\s+|to\s+)?(?:all\s+)?"
        r"(?:upper ?case|lower ?case|title ?case|capitals|caps|capital letters)\b",
        _cue(message),
        I,
    )
    if shaped:
        return shaped.group(1).strip()
    after = re.search(r"\b(?:in|of)\s+(?:the\s+)?(?:word|name|sentence|text|phrase)?\s*(.+?)[?.!]*$", message, I)
    return after.group(1).strip() if after else message.strip()


def text_arguments(message: str) -> dict[str, str]:
    """The operation (read from the request: see ``_cue``) and the text to work on (all of it)."""
    request = _cue(message)
    lowered = request.lower()
    occurrences = re.search(
        r"\bhow many (?:times (?:does|do|is) )?['\"]?(\w)['\"]?'?s?\b(?: (?:are|appear|is))?", request, I
    )
    operation = "stats"
    for pattern, name in (
        (r"key ?word|main topics", "keywords"),
        (r"summar|sum up|tl;?dr|main points|shorten", "summary"),
        (r"upper|capitals|all caps|\bcaps\b|shout", "upper"),
        (r"lower ?case", "lower"),
        (r"title ?case|capitali[sz]e each", "title"),
        (r"\breplace\b", "replace"),
    ):
        if re.search(pattern, lowered):
            operation = name
            break
    args = {"operation": operation, "text": _text_argument(message)}
    if operation == "replace":
        pair = re.search(r"replace\s+[\"“']?(.+?)[\"”']?\s+with\s+[\"“']?(.+?)[\"”']?(?:\s+in\b|:|$)", request, I)
        if pair:
            args.update(find=pair.group(1), replace=pair.group(2))
    elif operation == "stats" and occurrences and len(occurrences.group(1)) == 1:
        args.update(operation="count", find=occurrences.group(1))
    return args


def memory_query(message: str) -> str:
    return _squash(_MEMORY_SCAFFOLD.sub(" ", message))


def filename_for(message: str, history: str) -> str:
    """The file a message names: a file name, or a word of one of the thread's files; '' for the latest."""
    named = _FILENAME.search(message)
    if named:
        return named.group(0)
    known: list[str] = [
        name.split(" (")[0] for found in _ATTACHED.findall(history + "\n" + message) for name in found.split(", ")
    ]
    for word in re.findall(r"[\w-]{3,}", message.lower()):
        if word in ("file", "the", "this", "that", "csv", "json", "attached", "uploaded", "summarize", "summarise"):
            continue
        hits = [name for name in known if word in name.lower()]
        if hits:
            return hits[-1]
    return ""


def place_for(message: str) -> str:
    match = re.search(
        r"\b(?:in|at|for|near)\s+([A-ZÀ-Þ][\wÀ-ÿ'.-]*(?:[ ,]+(?:[A-ZÀ-Þ][\wÀ-ÿ'.-]*|[A-Z]{2}))*)", message
    )
    if match:
        return match.group(1).strip(" ,.")
    match = re.search(
        r"\b(?:in|at|for)\s+([a-zà-ÿ][\wà-ÿ' .,-]*?)\s*(?:today|tomorrow|now|right now|this \w+)?[?.!]*$", message, I
    )
    if match and not _WEATHER_WORDS.fullmatch(match.group(1)):
        return match.group(1).strip(" ,.")
    return _squash(_WEATHER_WORDS.sub(" ", message)).strip(" ,.")


def web_query(message: str) -> str:
    return _squash(_WEB_WORDS.sub(" ", message)).strip(" ,.")


# --- Routing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    tool: str
    matches: Callable[[str], bool]
    arguments: Callable[[str, str], dict[str, Any] | None]
    # The arguments come from the whole message, not only from what it asks (see ``_cue``).
    whole: bool = False


def _has(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda message: bool(pattern.search(message))


def _calculation(message: str, history: str) -> dict[str, Any] | None:
    expression = arithmetic(message)
    return {"expression": expression} if expression else None


def _word_problem(message: str, history: str) -> dict[str, Any] | None:
    expression = word_problem(message)
    return {"expression": expression} if expression else None


def _code(message: str, history: str) -> dict[str, Any] | None:
    code = extract_code(message)
    return {"code": code} if code else None


def _may_ask_to_run_code(message: str) -> bool:
    """False for "summarize this: <text>" and the like: text work asked for before the colon, so
    what follows is the text, however much of it looks like code or says "run"."""
    head, _, body = message.partition(":")
    asks_text_work = _TEXT_STRONG.search(head) or _TEXT_WEAK.search(head)
    return not (body.strip() and asks_text_work and not _RUN_VERB.search(head) and not _PYTHON.search(head))


def _not_a_question_about_files(message: str) -> bool:
    return bool(_FILE.search(message))


RULES = [
    Rule("run_python", _may_ask_to_run_code, _code, whole=True),
    Rule("file_processor", _not_a_question_about_files, lambda m, h: {"filename": filename_for(m, h)}),
    Rule("text_processor", _has(_TEXT_STRONG), lambda m, h: text_arguments(m), whole=True),
    Rule("memory_search", _has(_MEMORY_STRONG), lambda m, h: {"query": memory_query(m)} if memory_query(m) else None),
    Rule("weather", _has(_WEATHER), lambda m, h: {"location": place_for(m)}),
    Rule("web_search", _has(_WEB), lambda m, h: {"query": web_query(m)} if web_query(m) else None),
    Rule("calculator", lambda m: True, _calculation),
    Rule("memory_search", _has(_MEMORY_WEAK), lambda m, h: {"query": memory_query(m)} if memory_query(m) else None),
    Rule("calculator", lambda m: True, _word_problem),
    Rule(
        "text_processor",
        _has(_TEXT_WEAK),
        lambda m, h: text_arguments(m) if ":" in m or _QUOTED.search(m) else None,
        whole=True,
    ),
]


def route(message: str, tools: list[str], history: str = "") -> tuple[str, dict[str, Any]] | None:
    """The tool a message asks for, with the argument pulled out of it; None when no tool fits."""
    cue = _cue(message)
    if _NOTE.match(cue) and "?" not in cue:
        return None
    for rule in RULES:
        if rule.tool in tools and rule.matches(cue):
            arguments = rule.arguments(message if rule.whole else cue, history)
            if arguments is not None:
                return rule.tool, arguments
    return None


# --- Answers ----------------------------------------------------------------------------------


def capabilities() -> list[str]:
    """What the offline model can do on this server, one line each."""
    lines = [
        "**arithmetic**, in words or symbols: *what's 15% of 240?*, *12 times 7*, *square root of 2*",
        "**your earlier messages**, in any conversation: *what was my sister called?*",
        "**attached files** (CSV, JSON, text): *summarize this file*",
        "**Python**, in a sandbox: *run print(sum(range(10)))*",
        "**text work**: *how many words are in: …*, *make 'hello' uppercase*, *keywords of: …*",
    ]
    web = settings.SERPAPI_API_KEY or settings.WEB_SEARCH_PROVIDER != "off"
    lines.append(
        "**web search**: *search the web for Django 5.2*" if web else "web search is turned off on this server"
    )
    lines.append(
        "**the weather**: *weather in Lisbon*" if settings.OPENWEATHER_API_KEY else "the weather is not configured here"
    )
    return lines


def _capability_list() -> str:
    return "\n".join(f"- {line}" for line in capabilities())


def closest_tool(message: str) -> str:
    """The tool nearest to a message no rule took, as a suggestion."""
    if re.search(r"\d", message):
        return "If it is arithmetic, write it as a calculation, like *what is 12 times 7?*"
    if re.search(r"\b(my|i|me)\b", message, I):
        return "If it is about something you told me, ask *what did I say about …?* and I'll search your messages."
    if re.search(r"\b(who|what|when|where|why|how)\b", message, I):
        return "For facts about the world I'd need the web: try *search the web for …*."
    if len(message.split()) > 12:
        return "If you want this text worked on, try *summarize: …* or *count the words in: …*."
    return "Tell me which of these you need and I'll do it."


def small_talk(message: str) -> str:
    """The answer when no tool ran: greetings, thanks, what it can do, or what it understood."""
    text = _cue(message.strip())
    if _NOTE.match(text):
        noted = _squash(_NOTE.sub("", text)).rstrip(".!")
        return (
            f"Noted: “{noted}”. I keep what you tell me, so ask me later (for example *what did I say about …?*) "
            "and I'll find it."
        )
    if _CAPABILITIES.search(text):
        return "I'm the built-in offline assistant. Here is what I can do:\n\n" + _capability_list()
    if _THANKS.search(text):
        return "You're welcome! Anything else I can work out for you?"
    if _GREETING.search(text):
        how = " I'm doing well, thanks." if _HOW_ARE_YOU.search(text) else ""
        return f"Hello!{how} I'm the built-in offline assistant. I can help with:\n\n" + _capability_list()
    if _HOW_ARE_YOU.search(text):
        return "I'm doing well, thanks for asking! What can I work out for you?"
    understood = _squash(text)
    if len(understood) > 120:
        understood = understood[:119].rsplit(" ", 1)[0] + "…"
    return (
        f"I understood: “{understood}”, but none of my tools fits it, and as the built-in offline model "
        f"I can't hold an open conversation. {closest_tool(text)}\n\nWhat I can do:\n\n{_capability_list()}"
    )


def _compose(message: str, steps: dict[str, str]) -> str:
    """The answer, from the last observation of a tool (or small talk when no tool ran)."""
    used = [(steps.get(f"tool_name_{n}"), steps.get(f"observation_{n}", "")) for n in range(20)]
    used = [(name, observation) for name, observation in used if name and name != "finish"]
    if not used:
        return small_talk(message)
    tool, observation = used[-1]
    if tool == "calculator":
        if " = " in observation and "error" not in observation.lower():
            question, result = observation.rsplit(" = ", 1)
            return f"{question} = **{result}**"
        return observation.replace("Calculator error:", "I couldn't calculate that:", 1)
    if tool == "memory_search":
        if observation.startswith("Nothing"):
            return "I couldn't find that in your earlier messages. " + observation
        return observation.replace("From your earlier messages", "Here is what you said before", 1)
    if tool == "run_python":
        return observation.replace("Output:\n", "Output:\n\n```\n", 1) + ("\n```" if "Output:" in observation else "")
    return observation


def respond(system: str, user: str) -> str:
    """What the offline model writes for one DSPy call, in ChatAdapter's field format."""
    inputs = fields(user)
    message = inputs.get("message") or inputs.get("question") or user
    outputs: dict[str, str]
    # The trajectory's steps are field markers inside the trajectory field: they parse as fields.
    if "next_tool_name" in system:
        offered = _tools_offered(system)
        routed = None if "observation_0" in inputs else route(message, offered, inputs.get("history", ""))
        if routed:
            tool, args = routed
            outputs = {
                "next_thought": f"This calls for {tool}.",
                "next_tool_name": tool,
                "next_tool_args": json.dumps(args, ensure_ascii=False),
            }
        else:
            outputs = {"next_thought": "I have what I need.", "next_tool_name": "finish", "next_tool_args": "{}"}
    else:
        answer = _compose(message, inputs)
        outputs = {"reasoning": "Composed from the tools' observations.", "answer": answer}
    body = "".join(f"[[ ## {name} ## ]]\n{value}\n\n" for name, value in outputs.items())
    return body + "[[ ## completed ## ]]"


class OfflineEngine:
    """A DSPy engine that runs the offline model."""

    model = "offline"

    def _text(self, request: Any) -> str:
        system = request.system if isinstance(request.system, str) else "".join(p.text for p in (request.system or []))
        user = next((m.text or "" for m in reversed(request.messages) if m.role == "user"), "")
        started = time.thread_time()
        text = respond(system, user)
        MODEL_SECONDS.append(time.thread_time() - started)
        return text

    def complete(self, request: Any) -> Response:
        return Response(
            id=None,
            model=self.model,
            message=Message.assistant([TextPart(self._text(request))]),
            finish_reason="stop",
            usage=Usage(input_tokens=0, output_tokens=0, total_tokens=0),
        )

    def stream(self, request: Any) -> Iterator[Any]:
        from dspy._vendor.lm15.types import StreamDeltaEvent, StreamEndEvent, StreamStartEvent, TextDelta

        text = self._text(request)
        # Only the answer's words are paced, as people watch them arrive; the fields before it
        # and the agent's own steps go at once.
        marker = "[[ ## answer ## ]]"
        head, paced = text.split(marker, 1) if marker in text else (text, "")
        delay = settings.AGENT_OFFLINE_WORD_DELAY_MS / 1000
        yield StreamStartEvent(id=None, model=self.model)
        for piece in re.findall(r"\s*\S+|\s+", head):
            yield StreamDeltaEvent(delta=TextDelta(text=piece, part_index=0))
        if marker in text:
            yield StreamDeltaEvent(delta=TextDelta(text=marker, part_index=0))
            time.sleep(settings.AGENT_OFFLINE_FIRST_TOKEN_DELAY_MS / 1000)
        for piece in re.findall(r"\s*\S+|\s+", paced):
            if delay and piece.strip() and not piece.strip().startswith("[[ ##"):
                time.sleep(delay)
            yield StreamDeltaEvent(delta=TextDelta(text=piece, part_index=0))
        yield StreamEndEvent(finish_reason="stop", usage=Usage(input_tokens=0, output_tokens=0, total_tokens=0))

    def close(self) -> None:
        pass
