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
