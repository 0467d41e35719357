from _estimators import EXPECTED_FAILED_CHECKS, estimator_instances
from sklearn.utils.estimator_checks import parametrize_with_checks


@parametrize_with_checks(
    list(estimator_instances()),
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
    xfail_strict=True,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
