from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import SetPasswordMixin, UsernameField
from django.contrib.auth.validators import UnicodeUsernameValidator

from .usernames import refuse_mixed_script

User = get_user_model()


class SignUpForm(forms.Form):
    """Step 1 of sign-up: a username and an e-mail address; the password comes with the e-mailed link.

    Nothing here depends on who exists (issue 13): whether the address or the name is taken is said
    in the e-mail to that address, never on the page (accounts/services.py, request_signup). The
    name is NFKC-normalised (UsernameField) and refused when it mixes look-alike alphabets.
    """

    username = UsernameField(
        max_length=150, validators=[UnicodeUsernameValidator(), refuse_mixed_script],
        help_text="Up to 150 letters, digits and @ . + - _ only.",
        widget=forms.TextInput(attrs={"autocomplete": "username", "autocapitalize": "none"}),
    )
    email = forms.EmailField(
        label="E-mail address",
        max_length=254,
        help_text="We send a link to it to finish the sign-up; later, only to reset your password.",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )

    def clean_email(self):
        return User.objects.normalize_email(self.cleaned_data["email"])


class ChoosePasswordForm(SetPasswordMixin, forms.Form):
    """Step 2 of sign-up (from the e-mailed link): the password, checked by AUTH_PASSWORD_VALIDATORS
    against the account about to be created (so it may not resemble the username or address)."""

    password1, password2 = SetPasswordMixin.create_password_fields()

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean(self):
        self.validate_passwords()
        self.validate_password_for_user(self.user)
        return super().clean()


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
