from __future__ import annotations

import datetime
import enum
import subprocess
import sys
from typing import Annotated, Any

import pydantic
import pytest

from flowyard import flow
from flowyard.sdk import ParameterTypeError, parameter_schema
from flowyard.sdk._parameters import CallSignature
from flowyard.sdk._schema import parameter_descriptions


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Window(pydantic.BaseModel):
    start: datetime.date
    days: int = 1


def _constrained(
    n: int, positive: Annotated[int, pydantic.Field(gt=0)] = 1, flag: bool = False
) -> None: ...


class Opaque:
    """A type pydantic has no schema for."""


def test_parameters_are_coerced_from_type_hints() -> None:
    seen: dict[str, Any] = {}

    @flow
    def typed(
        n: int,
        when: datetime.date,
        color: Color,
        ids: list[int],
        window: Window,
        ratio: float = 0.5,
    ) -> None:
        seen.update(n=n, when=when, color=color, ids=ids, window=window, ratio=ratio)

    typed(
        "3",  # type: ignore[arg-type]
        "2024-05-01",  # type: ignore[arg-type]
        "blue",  # type: ignore[arg-type]
        ["1", 2],  # type: ignore[list-item]
        {"start": "2024-01-02", "days": "7"},  # type: ignore[arg-type]
    )
    assert seen == {
        "n": 3,
        "when": datetime.date(2024, 5, 1),
        "color": Color.BLUE,
        "ids": [1, 2],
        "window": Window(start=datetime.date(2024, 1, 2), days=7),
        "ratio": 0.5,
    }


def test_a_coercion_error_names_the_parameter_and_what_was_expected() -> None:
    @flow
    def typed(n: int, label: str = "x") -> int:
        return n

    with pytest.raises(ParameterTypeError) as caught:
        typed("three")  # type: ignore[arg-type]
    message = str(caught.value)
    assert message.startswith("Flow run received invalid parameters:")
    assert " - n: Input should be a valid integer" in message
    assert "got 'three', expected int" in message


def test_every_bad_parameter_is_listed_with_nested_locations() -> None:
    @flow
    def typed(window: Window, ids: list[int]) -> None:
        return None

    with pytest.raises(ParameterTypeError) as caught:
        typed({"start": "not a date"}, [1, "x"])  # type: ignore[arg-type, list-item]
    message = str(caught.value)
    assert " - window.start: Input should be a valid date" in message
    assert " - ids.1: Input should be a valid integer" in message


def test_a_failed_validation_fails_the_flow_run_with_the_reason() -> None:
    @flow
    def typed(n: int) -> int:
        return n

    state = typed("x", return_state=True)  # type: ignore[arg-type, call-arg]
    assert state.is_failed()
    assert (state.message or "").startswith("Validation of flow parameters failed with error:")


def test_validation_can_be_turned_off() -> None:
    @flow(validate_parameters=False)
    def loose(n: int) -> object:
        return n

    assert loose("x") == "x"  # type: ignore[arg-type]


def test_defaults_are_not_validated_against_their_own_annotation() -> None:
    @flow
    def optional_looking(limit: int | None = None) -> object:  # type: ignore[assignment]
        return limit

    assert optional_looking() is None


def test_arbitrary_classes_are_checked_by_isinstance() -> None:
    @flow
    def takes(thing: Opaque) -> str:
        return type(thing).__name__

    assert takes(Opaque()) == "Opaque"
    with pytest.raises(ParameterTypeError, match="thing"):
        takes("nope")  # type: ignore[arg-type]


def test_string_annotations_from_future_imports_are_resolved() -> None:
    @flow
    def typed(n: int) -> int:
        return n

    assert typed("5") == 5  # type: ignore[arg-type]


def test_flow_run_parameters_include_defaults_and_coerced_values() -> None:
    from flowyard.runtime import flow_run

    seen: dict[str, object] = {}

    @flow
    def typed(n: int, label: str = "x") -> None:
        seen.update(flow_run.parameters)

    typed("2")  # type: ignore[arg-type]
    assert seen == {"n": 2, "label": "x"}


def google_style(city: str, days: int = 3, window: Window | None = None) -> None:
    """Forecast a city.

    Args:
        city: The city to forecast,
            spelled as on a map.
        days (int): How many days ahead.
        window: An optional window.

    Returns:
        Nothing.
    """


def numpy_style(city: str, days: int = 3) -> None:
    """Forecast.

    Parameters
    ----------
    city : str
        The city.
    days : int
        Days ahead.

    Returns
    -------
    None
    """


def sphinx_style(city: str) -> None:
    """Forecast.

    :param city: The city
        to forecast.
    :returns: nothing
    """


def test_docstring_descriptions_are_read_in_three_styles() -> None:
    assert parameter_descriptions(google_style) == {
        "city": "The city to forecast, spelled as on a map.",
        "days": "How many days ahead.",
        "window": "An optional window.",
    }
    assert parameter_descriptions(numpy_style) == {"city": "The city.", "days": "Days ahead."}
    assert parameter_descriptions(sphinx_style) == {"city": "The city to forecast."}


def test_parameter_schema_has_types_defaults_positions_and_descriptions() -> None:
    schema = parameter_schema(google_style)
    assert schema["title"] == "Parameters"
    assert schema["type"] == "object"
    assert schema["required"] == ["city"]
    city = schema["properties"]["city"]
    assert city == {
        "title": "city",
        "type": "string",
        "position": 0,
        "description": "The city to forecast, spelled as on a map.",
    }
    days = schema["properties"]["days"]
    assert days["default"] == 3
    assert days["type"] == "integer"
    assert days["position"] == 1
    window = schema["properties"]["window"]
    assert window["anyOf"][0] == {"$ref": "#/definitions/Window"}
    assert "Window" in schema["definitions"]
    assert schema["definitions"]["Window"]["properties"]["start"]["format"] == "date"


def test_parameter_schema_tolerates_types_without_a_json_schema() -> None:
    def odd(thing: Opaque, when: datetime.datetime = datetime.datetime(2024, 1, 1)) -> None:
        return None

    schema = parameter_schema(odd)
    assert schema["properties"]["thing"]["title"] == "thing"
    assert schema["properties"]["when"]["format"] == "date-time"


def test_parameter_schema_handles_args_and_kwargs_and_enums() -> None:
    def variadic(color: Color, *args: int, **kwargs: str) -> None:
        return None

    schema = parameter_schema(variadic)
    assert schema["properties"]["args"]["type"] == "array"
    assert schema["properties"]["kwargs"]["type"] == "object"
    assert schema["required"] == ["color"]
    assert "Color" in schema["definitions"]


def test_flow_parameters_property_is_the_schema() -> None:
    @flow
    def forecast(city: str, days: int = 3) -> None:
        return None

    assert forecast.parameters["properties"]["days"]["default"] == 3


def test_values_already_of_a_plain_type_and_defaults_do_not_load_pydantic() -> None:
    code = (
        "import sys\n"
        "from typing import Annotated\n"
        "from flowyard.sdk._parameters import CallSignature\n"
        "def f(n: int, name: str = 'x', ratio: float = 0.5, flag: bool = False) -> None: ...\n"
        "sig = CallSignature(f)\n"
        "assert sig.validate({'n': 3, 'name': 'y', 'ratio': 0.5, 'flag': True}, 'f') == "
        "{'n': 3, 'name': 'y', 'ratio': 0.5, 'flag': True}\n"
        "assert sig.validate(sig.bind((1,), {}), 'f')['n'] == 1\n"
        "print('pydantic' in sys.modules)\n"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == "False"


def test_values_needing_coercion_or_carrying_constraints_still_go_through_pydantic() -> None:
    sig = CallSignature(_constrained)
    assert sig.validate({"n": "7"}, "f") == {"n": 7}
    with pytest.raises(ParameterTypeError, match="positive"):
        sig.validate({"n": 1, "positive": -1}, "f")
    with pytest.raises(ParameterTypeError, match="flag"):
        sig.validate({"n": 1, "flag": "maybe"}, "f")
