"""Calculator: arithmetic in words or symbols, evaluated on a parsed syntax tree (never ``eval``).

"15% of 240", "square root of 2 times 3", "2^10", "average of 3, 5 and 10", "12 plus 7",
"5!", "log of 100". Results too large to be useful (huge powers, huge factorials) are refused
before they are computed.
"""

from __future__ import annotations

import ast
import math
import operator
import re
import statistics
from collections.abc import Callable

from . import Tool, ToolContext, register

MAX_EXPRESSION_CHARS = 300
MAX_RESULT_DIGITS = 1000
MAX_FACTORIAL = 1000


class CalculationError(ValueError):
    pass


_FUNCTIONS: dict[str, Callable[..., float | int] | None] = {
    "sqrt": math.sqrt,
    "cbrt": lambda x: math.copysign(abs(x) ** (1 / 3), x),
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "log": math.log10,
    "ln": math.log,
    "exp": math.exp,
    "abs": abs,
    "round": round,
    "floor": math.floor,
    "ceil": math.ceil,
    "factorial": None,  # checked and computed in _call
}
_CONSTANTS = {"pi": math.pi, "e": math.e}
_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,  # size checked first, in _binary
}
_LIST_FUNCTIONS: dict[str, Callable[[list[float]], float]] = {
    "average": statistics.fmean,
    "mean": statistics.fmean,
    "median": statistics.median,
    "sum": math.fsum,
    "total": math.fsum,
    "product": math.prod,
    "minimum": min,
    "min": min,
    "maximum": max,
    "max": max,
}
_NUMBER = r"-?\d+(?:\.\d+)?"
_WORDS = [
    (r"\bsquare root of\b", " sqrt "),
    (r"\bcube root of\b", " cbrt "),
    (r"\bnatural log(?:arithm)? of\b", " ln "),
    (r"\blog(?:arithm)? of\b", " log "),
    (r"\b(sin|cos|tan|abs|exp|floor|ceil|round|sqrt|ln|log|factorial) of\b", r" \1 "),
    (r"\babsolute value of\b", " abs "),
    (rf"({_NUMBER})\s*%\s*of\b", r"(\1/100)*"),
    (rf"({_NUMBER})\s*percent of\b", r"(\1/100)*"),
    (rf"({_NUMBER})\s*(?:%|percent)", r"(\1/100)"),
    (r"\bto the power of\b|\braised to(?: the power of)?\b|\^", "**"),
    (r"\bsquared\b", "**2"),
    (r"\bcubed\b", "**3"),
    (r"\bplus\b|\badded to\b", "+"),
    (r"\bminus\b|\bless\b", "-"),
    (r"\bmultiplied by\b|\btimes\b|\u00d7|(?<=\d)\s*x\s*(?=\d)", "*"),
    (r"\bdivided by\b|\bover\b|÷", "/"),
    (r"\bmod(?:ulo)?\b", "%"),
    (rf"({_NUMBER})\s*!", r"factorial(\1)"),
]
_FILLER = re.compile(
    r"^\s*(?:please\s+)?(?:what(?:'s| is| are)|how much is|calculate|compute|evaluate|solve|work out)\s+", re.I
)


def _format(value: float | int) -> str:
    if isinstance(value, bool):
        raise CalculationError("Not a number.")
    if isinstance(value, int):
        return str(value)
    if math.isnan(value) or math.isinf(value):
        raise CalculationError("The result is not a finite number.")
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.10g}"


def _numbers(text: str) -> list[float]:
    return [float(n) for n in re.findall(_NUMBER, text)]


def _digits_of_product(*magnitudes: float) -> float:
    """log10 of the product's size: the number of digits the result would have."""
    return sum(math.log10(abs(m)) if m else -math.inf for m in magnitudes)


def _check_size(digits: float) -> None:
    if digits > MAX_RESULT_DIGITS:
        raise CalculationError(f"The result would have more than {MAX_RESULT_DIGITS} digits; not computed.")


def _binary(op: ast.operator, left: float | int, right: float | int) -> float | int:
    """One arithmetic step, refused before it is computed when the result would be huge."""
    if isinstance(op, ast.Pow) and left not in (0, 1, -1):
        _check_size(right * _digits_of_product(left))
    if isinstance(op, ast.Mult) and left and right:
        _check_size(_digits_of_product(left, right))
    try:
        result: float | int | complex = _BINARY[type(op)](left, right)
    except ZeroDivisionError:
        raise CalculationError("Division by zero.") from None
    except OverflowError:
        raise CalculationError("The result is too large to compute.") from None
    if isinstance(result, complex):
        raise CalculationError("The result is not a real number.")
    return result


def _call(name: str, args: list[float | int]) -> float | int:
    if name == "factorial":
        (n,) = args
        if n != int(n) or n < 0:
            raise CalculationError("Factorial needs a whole number of at least 0.")
        if n > MAX_FACTORIAL:
            raise CalculationError(f"Factorials above {MAX_FACTORIAL}! are refused (too large to be useful).")
        return math.factorial(int(n))
    function = _FUNCTIONS[name]
    assert function is not None  # only factorial has none, handled above
    return function(*args)


def _evaluate(node: ast.AST) -> float | int:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _evaluate(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _binary(node.op, _evaluate(node.left), _evaluate(node.right))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
        and len(node.args) == 1
    ):
        try:
            return _call(node.func.id, [_evaluate(node.args[0])])
        except (ValueError, OverflowError) as exc:
            if isinstance(exc, CalculationError):
                raise
            raise CalculationError(f"{node.func.id} is not defined there ({exc}).") from None
    raise CalculationError("Only numbers, + - * / % ^, parentheses and common functions are understood.")


def _to_python(text: str) -> str:
    expression = text.lower().replace(",", " , ")
    for pattern, replacement in _WORDS:
        expression = re.sub(pattern, replacement, expression)
    # "sqrt 2" -> "sqrt(2)": a function name followed by a bare number or a parenthesis.
    names = "|".join(_FUNCTIONS)
    expression = re.sub(rf"\b({names})\s+({_NUMBER}|\([^()]*\))", r"\1(\2)", expression)
    expression = re.sub(r"\b(and|by|the|of|is|equals?|result)\b|[?=]", " ", expression)
    return " ".join(expression.replace(" , ", ",").split())


def calculate(text: str) -> tuple[str, str]:
    """``(the question without its filler words, result)``; CalculationError when it is not arithmetic."""
    if not isinstance(text, str) or not text.strip():
        raise CalculationError("Give an expression, like '15% of 240' or '2^10'.")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise CalculationError(f"Expressions are limited to {MAX_EXPRESSION_CHARS} characters.")
    question = _FILLER.sub("", text.strip()).rstrip("?. ")
    list_match = re.match(rf"^(?:the\s+)?({'|'.join(_LIST_FUNCTIONS)})\s+(?:of\s+)?(.*)$", question, re.I)
    if list_match:
        values = _numbers(list_match.group(2))
        if not values:
            raise CalculationError(f"No numbers to take the {list_match.group(1)} of.")
        name = list_match.group(1).lower()
        shown = ", ".join(_format(v) for v in values)
        return f"{name} of {shown}", _format(_LIST_FUNCTIONS[name](values))
    expression = _to_python(question)
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        raise CalculationError(f"Could not read {text.strip()!r} as arithmetic.") from None
    return question, _format(_evaluate(tree))


@register("calculator", order=10)
def make_calculator(context: ToolContext) -> Tool:
    def calculator(expression: str) -> str:
        """Evaluate arithmetic written in words or symbols: '15% of 240', 'square root of 2 times 3',
        '2^10', 'average of 3, 5 and 10'. Returns the result."""
        try:
            shown, result = calculate(expression)
        except CalculationError as exc:
            return f"Calculator error: {exc}"
        return f"{shown} = {result}"

    return calculator
