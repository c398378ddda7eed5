from pathlib import Path

import pytest

pytestmark = pytest.mark.unit


def test_operator_package_does_not_shadow_the_standard_library():
    import operator

    import kafka_usecase_operator

    assert hasattr(operator, "itemgetter"), "a top-level `operator` package shadows Python's own module"
    assert kafka_usecase_operator.__version__
    assert not (Path(__file__).parents[2] / "operator" / "__init__.py").exists()

