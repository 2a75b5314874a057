"""Import a folder of photos for one user and classify them together (a bulk import).

Why: a clinic moving to the service arrives with a folder of photos, not one upload at a time.
Each photo goes through the same sanitiser as a web upload and becomes an ordinary submission of
that user (encrypted, in their history, with the model version), one lesion per photo (named after
the file) unless ``--lesion NAME`` puts them all on one spot. The photos share a batch id.

By default one task is queued for the worker (``--wait`` follows it until every photo is final).
``--inline`` classifies in this process, ``--batch-size`` photos per model call, with no broker
or worker needed: handy for a one-off import. Either way analysis is safe to repeat: a photo that
is already final is skipped. Heatmaps are skipped unless ``--heatmaps`` (they cost ~50 model calls
per photo); the embedding used by the lesion timeline is always stored. ``--dry-run`` only checks
which files would be accepted.

    manage.py classify_images --user clinic@example.org /data/import --recursive --inline
"""

from __future__ import annotations

import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from accounts.services import has_current_consent
from diagnosis import analysis, bulk
from diagnosis.classifier import get_classifier
from diagnosis.models import Lesion, Submission

POLL_SECONDS = 2


class Command(BaseCommand):
    help = "Import photos from folders or files for one user and classify them in batches."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", metavar="FOLDER_OR_FILE")
        parser.add_argument("--user", required=True, metavar="EMAIL", help="Whose photos these are.")
        lesions = parser.add_mutually_exclusive_group()
        lesions.add_argument("--lesion-per-file", action="store_true",
                             help="One new lesion per photo, named after the file (the default).")
        lesions.add_argument("--lesion", metavar="NAME",
                             help="Put every photo on this lesion of the user's (created if they have none).")
        parser.add_argument("--recursive", action="store_true", help="Also read the folders' sub-folders.")
        parser.add_argument("--batch-size", type=int, default=None, metavar="N",
                            help="Photos per model call with --inline (default: ML_BATCH_SIZE).")
        run = parser.add_mutually_exclusive_group()
        run.add_argument("--inline", action="store_true",
                         help="Classify here and now instead of queueing a task for the worker.")
        run.add_argument("--wait", action="store_true", help="Queue the task, then wait until it finished.")
        parser.add_argument("--heatmaps", action="store_true",
                            help="Also store each photo's heatmap (about a second per photo on a CPU; off for speed).")
        parser.add_argument("--dry-run", action="store_true", help="Only check the files; store nothing.")

    def handle(self, *args, paths, user, lesion, recursive, batch_size, inline, wait, heatmaps, dry_run, **options):
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        owner = self._owner(user)
        files = self._collect(paths, recursive)  # {path: name to report}
        if not files:
            raise CommandError("No files found.")
        started = time.monotonic()
        progress_bar = tqdm(total=len(files), unit="photo", desc="checking" if dry_run else "importing",
                            file=self.stderr, disable=None)
        with progress_bar:
            if dry_run:
                outcome = bulk.check_files(_opened(files), progress=lambda _: progress_bar.update())
            else:
                outcome = bulk.create_batch(
                    owner, _opened(files), lesion=self._lesion(owner, lesion),
                    lesion_names=None if lesion else [Path(name).stem for name in files.values()],
                    enqueue=not inline, heatmaps=heatmaps, progress=lambda _: progress_bar.update(),
                )
        for rejected in outcome.rejected:
            self.stderr.write(f"refused {rejected.name}: {rejected.error}")
        accepted = len(outcome.accepted)
        if dry_run:
            self.stdout.write(f"Would import {accepted} photo(s); {len(outcome.rejected)} file(s) refused.")
            return
        if not accepted:
            raise CommandError("No photo was accepted.")
        self.stdout.write(f"Batch {outcome.batch}: {accepted} photo(s) imported, {len(outcome.rejected)} refused "
                          f"in {time.monotonic() - started:.1f} s.")
        if inline:
            self._classify(outcome.submission_ids, batch_size, heatmaps)
        elif wait:
            self._wait(outcome.submission_ids)
        else:
            self.stdout.write("Queued for the worker; follow it with GET /api/v1/batches/<batch>/.")
            return
        self._summary(outcome)

    def _owner(self, email):
        owner = get_user_model().objects.filter(email__iexact=email).first()
        if owner is None:
            raise CommandError(f"No user with the email address {email}.")
        if not has_current_consent(owner):
            # The same rule as the upload page and the API: no photos before the consent in force.
            raise CommandError(f"{email} has not accepted the current consent; they must before photos are added.")
        return owner

    def _lesion(self, owner, name):
        if not name:
            return None
        matches = list(Lesion.objects.for_owner(owner).filter(name=name)[:2])
        if len(matches) > 1:
            raise CommandError(f"{owner.email} has several lesions called {name!r}; rename one first.")
        return matches[0] if matches else Lesion.objects.create(owner=owner, name=name[:100])

    def _collect(self, paths, recursive):
        """Every file to import, with the name to report it by (its path inside the folder given)."""
        files = {}
        for raw in paths:
            path = Path(raw)
            if path.is_dir():
                found = path.rglob("*") if recursive else path.glob("*")
                # Hidden files (.DS_Store and the like) are not photos; anything else is tried and the
                # sanitiser, which reads the content rather than the name, says what it is.
                for file in sorted(p for p in found if p.is_file() and not p.name.startswith(".")):
                    files.setdefault(file, str(file.relative_to(path)))
            elif path.is_file():
                files.setdefault(path, str(path))
            else:
                raise CommandError(f"{raw}: no such file or folder.")
        return files

    def _classify(self, submission_ids, batch_size, heatmaps):
        started = time.monotonic()
        try:
            get_classifier()  # loaded first so that the rate below is the classification alone
        except Exception:  # noqa: BLE001 - analyse_batch marks each photo failed with the reason
            pass
        loaded = time.monotonic()
        with tqdm(total=len(submission_ids), unit="photo", desc="classifying", file=self.stderr, disable=None) as bar:
            analysis.analyse_batch(submission_ids, batch_size=batch_size, heatmaps=heatmaps,
                                   progress=lambda *_: bar.update())
        seconds = max(time.monotonic() - loaded, 1e-6)
        self.stdout.write(f"Model loaded in {loaded - started:.1f} s; {len(submission_ids)} photo(s) classified in "
                          f"{seconds:.1f} s ({len(submission_ids) / seconds:.1f} photos/s).")

    def _wait(self, submission_ids):
        pending = Submission.objects.filter(pk__in=submission_ids).exclude(status__in=Submission.FINAL_STATUSES)
        total = len(submission_ids)
        with tqdm(total=total, unit="photo", desc="waiting", file=self.stderr, disable=None) as bar:
            while True:
                done = total - pending.count()
                bar.update(done - bar.n)
                if done >= total:
                    return
                time.sleep(POLL_SECONDS)

    def _summary(self, outcome):
        by_pk = Submission.objects.filter(pk__in=outcome.submission_ids).with_top_prediction().in_bulk()
        rows = [("file", "status", "top class", "probability")]
        for entry in outcome.files:
            if entry.submission is None:
                rows.append((entry.name, "refused", "", ""))
                continue
            submission = by_pk[entry.submission.pk]
            probability = "" if submission.top_probability is None else f"{submission.top_probability:.1%}"
            rows.append((entry.name, submission.status, submission.top_label or "", probability))
        widths = [max(len(str(row[i])) for row in rows) for i in range(4)]
        for row in rows:
            self.stdout.write("  ".join(str(value).ljust(width) for value, width in zip(row, widths)).rstrip())
        counts = {}
        for submission in by_pk.values():
            counts[submission.status] = counts.get(submission.status, 0) + 1
        self.stdout.write("Summary: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))


def _opened(files):
    """Open one file at a time (a folder of thousands must not hold thousands of handles)."""
    for path, name in files.items():
        with path.open("rb") as fh:
            yield File(fh, name=name)
