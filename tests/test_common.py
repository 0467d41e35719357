from _estimators import estimator_instances, expected_failed_checks
from sklearn.utils.estimator_checks import parametrize_with_checks


@parametrize_with_checks(
    list(estimator_instances()),
    expected_failed_checks=expected_failed_checks,
    xfail_strict=True,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
