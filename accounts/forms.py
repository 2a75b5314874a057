from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm

User = get_user_model()


class SignUpForm(UserCreationForm):
    """Username, e-mail and a password checked by AUTH_PASSWORD_VALIDATORS.

    UserCreationForm already rejects a username that differs from an existing
    one only by case; we do the same for e-mail. The database constraint is
    case-sensitive, and password reset looks users up with ``email__iexact``,
    so two addresses differing only by case would both receive a reset link.
    """

    email = forms.EmailField(
        label="E-mail address",
        max_length=254,
        help_text="Used only to reset your password.",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")

    def clean_email(self):
        email = User.objects.normalize_email(self.cleaned_data["email"])
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("An account with this e-mail address already exists.", code="duplicate_email")
        return email


class ConsentForm(forms.Form):
    agree = forms.BooleanField(
        required=True,
        label="I have read this and agree to my photos and answers being stored and analysed as described.",
        error_messages={"required": "You need to agree before uploading photos."},
    )
    improve_model = forms.BooleanField(
        required=False, label="Optional: my photos may be used, without my name or e-mail, to improve the model.",
    )


class DeleteAccountForm(forms.Form):
    password = forms.CharField(
        label="Your password", strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_password(self):
        # check_password, not authenticate(): the session already proves who this is.
        if not self.user.check_password(self.cleaned_data["password"]):
            raise forms.ValidationError("That is not your password.", code="wrong_password")
        return ""
