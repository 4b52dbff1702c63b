from closedloop.testing import load_profile_from_env, register_profiles

register_profiles()
load_profile_from_env()  # HYPOTHESIS_PROFILE=quick|ci|dev|thorough
