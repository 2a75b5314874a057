"""Fixtures shared by the diagnosis tests: a stored submission, and the same after the tiny model analysed it."""

import pytest

from diagnosis import analysis
from diagnosis.models import Submission


@pytest.fixture
def submission(submission_factory):
    return submission_factory()


@pytest.fixture
def analysed(submission, use_tiny_model):
    """``submission`` (a module may override it) analysed by the tiny real model."""
    assert analysis.analyse_submission(submission.pk) == Submission.Status.DONE
    submission.refresh_from_db()
    return submission
