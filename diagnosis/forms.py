"""The upload form: the photo, which lesion it shows, and optional context."""

from django import forms

from .choices import BodySite, Duration, Sex, SkinType
from .images import ImageRejected
from .models import Submission
from .services import clean_upload

ACCEPT = "image/jpeg,image/png,image/webp,image/heic,image/heif,.jpg,.jpeg,.jfif,.png,.webp,.heic,.heif"


def _optional(choices):
    return [("", "—")] + list(choices)


class UploadForm(forms.Form):
    image = forms.FileField(
        label="Photo of the spot",
        help_text="JPEG, PNG, WebP or HEIC. Take it in good light, in focus, with the spot in the middle.",
        widget=forms.ClearableFileInput(attrs={"accept": ACCEPT}),
    )
    lesion = forms.ModelChoiceField(
        queryset=None, required=False, empty_label="A new spot", to_field_name="uuid",
        label="Which spot is this?",
    )
    lesion_name = forms.CharField(
        max_length=100, required=False, label="Name for a new spot",
        help_text="For example “mole on left shoulder”. Leave empty to name it by date.",
    )
    age = forms.IntegerField(min_value=0, max_value=120, required=False)
    sex = forms.ChoiceField(choices=_optional(Sex.choices), required=False)
    anatomic_site = forms.ChoiceField(choices=_optional(BodySite.choices), required=False, label="Where on the body")
    skin_type = forms.ChoiceField(choices=_optional(SkinType.choices), required=False, label="Skin type")
    duration = forms.ChoiceField(choices=_optional(Duration.choices), required=False, label="How long has it been there")
    symptoms = forms.MultipleChoiceField(
        choices=Submission.Symptom.choices, required=False, widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args, lesions, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["lesion"].queryset = lesions

    def clean_image(self):
        try:
            return clean_upload(self.cleaned_data["image"])
        except ImageRejected as exc:
            raise forms.ValidationError(str(exc), code="rejected_image")

    def submission_kwargs(self):
        data = self.cleaned_data
        context = {key: data[key] for key in ("age", "sex", "anatomic_site", "skin_type", "duration", "symptoms")}
        return {"lesion": data["lesion"], "lesion_name": data["lesion_name"], **context}
