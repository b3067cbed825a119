import re

import pytest

from agent.tools import ToolContext
from agent.tools.calculator import MAX_EXPRESSION_CHARS, CalculationError, calculate, make_calculator


@pytest.mark.parametrize(
    ("question", "shown", "result"),
    [
        ("what is 15% of 240?", "15% of 240", "36"),
        ("square root of 2 times 3", "square root of 2 times 3", "4.242640687"),
        ("2^10", "2^10", "1024"),
        ("average of 3, 5 and 10", "average of 3, 5, 10", "6"),
        ("median of 1, 9, 3", "median of 1, 9, 3", "3"),
        ("sum of 1, 2, 3", "sum of 1, 2, 3", "6"),
        ("12 plus 7", "12 plus 7", "19"),
        ("7 divided by 2", "7 divided by 2", "3.5"),
        ("17 mod 5", "17 mod 5", "2"),
        ("2 to the power of 8", "2 to the power of 8", "256"),
        ("10 x 3", "10 x 3", "30"),
        ("5!", "5!", "120"),
        ("log of 100", "log of 100", "2"),
        ("pi times 2", "pi times 2", "6.283185307"),
        ("(1+2)*3", "(1+2)*3", "9"),
        ("10 - -3", "10 - -3", "13"),
    ],
)
def test_natural_language_arithmetic(question, shown, result):
    assert calculate(question) == (shown, result)


@pytest.mark.parametrize(
    ("question", "error"),
    [
        ("9^9^9", "more than 1000 digits"),
        ("2**100000", "more than 1000 digits"),
        ("10000!", "Factorials above 1000!"),
        ("1/0", "Division by zero"),
        ("0^-1", "Division by zero"),
        ("0.5^-100000", "more than 1000 digits"),
        ("10.0^400", "The result is too large to compute"),
        ("(-8)^(1/3)", "not a real number"),
        ("1e308*1e308", "not a finite number"),
        ("sqrt of -1", "sqrt is not defined there"),
        ("(2", "Could not read"),
        ("hello", "Only numbers"),
        ('__import__("os").system("id")', "Only numbers"),
        ("(lambda: 1)()", "Only numbers"),
        ("().__class__", "Only numbers"),
        ("[1, 2]", "Only numbers"),
        ("x" * (MAX_EXPRESSION_CHARS + 1), "limited to"),
        ("", "Give an expression"),
    ],
)
def test_refuses_what_it_should_not_compute(question, error):
    with pytest.raises(CalculationError, match=re.escape(error)):
        calculate(question)


def test_the_tool_reports_errors_as_observations():
    calculator = make_calculator(ToolContext())
    assert calculator(expression="15% of 240") == "15% of 240 = 36"
    assert (
        calculator(expression="2^99999999")
        == "Calculator error: The result would have more than 1000 digits; not computed."
    )
    assert calculator(expression=None).startswith("Calculator error:")
