"""exhale: carbon monoxide screening in pregnancy and opt-out referral to stop-smoking support."""

__version__ = "0.1.0"
