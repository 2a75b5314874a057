"""Choice lists for the patient context a user may give with a photo.

Body sites follow HAM10000's ``localization`` values so that the context can
feed a model trained on that metadata.
"""

from django.db import models


class BodySite(models.TextChoices):
    SCALP = "scalp", "Scalp"
    FACE = "face", "Face"
    EAR = "ear", "Ear"
    NECK = "neck", "Neck"
    CHEST = "chest", "Chest"
    ABDOMEN = "abdomen", "Abdomen"
    BACK = "back", "Back"
    TRUNK = "trunk", "Trunk (other)"
    UPPER_EXTREMITY = "upper extremity", "Arm"
    HAND = "hand", "Hand"
    LOWER_EXTREMITY = "lower extremity", "Leg"
    FOOT = "foot", "Foot"
    ACRAL = "acral", "Palm or sole"
    GENITAL = "genital", "Genital area"
    UNKNOWN = "unknown", "Other / not sure"


class Sex(models.TextChoices):
    FEMALE = "female", "Female"
    MALE = "male", "Male"
    OTHER = "other", "Other / prefer not to say"


class SkinType(models.TextChoices):
    I = "I", "I – always burns, never tans"
    II = "II", "II – usually burns, tans minimally"
    III = "III", "III – sometimes burns, tans gradually"
    IV = "IV", "IV – rarely burns, tans easily"
    V = "V", "V – very rarely burns, brown skin"
    VI = "VI", "VI – never burns, dark brown or black skin"


class Duration(models.TextChoices):
    DAYS = "days", "Less than a week"
    WEEKS = "weeks", "1–4 weeks"
    MONTHS = "months", "1–12 months"
    YEARS = "years", "More than a year"
    LIFELONG = "lifelong", "As long as I remember"
