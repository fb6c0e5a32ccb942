"""Sign-in screen: username and password, or single sign-on when it is configured."""

from __future__ import annotations

import streamlit as st

from app_pages import ui
from evidence import auth

st.title("Substantiate")
st.caption("Claim-evidence review for health-marketing content")

identity = ui.sso_identity()
if identity is not None:
    # Signed in with the identity provider, but no active account matches it.
    who = identity.email or identity.subject or "this account"
    unverified = ("" if identity.email is None or identity.email_verified else
                  " (the identity provider has not verified this e-mail address)")
    st.error(f"There is no active Substantiate account for {ui.md_escape(who)}"
             f"{unverified}. Ask an admin to add one.")
    if st.button("Sign out of SSO", key="sign_in_sso_logout"):
        st.logout()
    st.stop()

with st.form("sign_in_form"):
    username = st.text_input("Username", key="sign_in_username", autocomplete="username")
    password = st.text_input("Password", type="password", key="sign_in_password",
                             autocomplete="current-password")
    submitted = st.form_submit_button("Sign in", type="primary", key="sign_in_submit")

if submitted:
    with ui.writing() as session:  # failures are recorded, success starts an app session
        result = auth.sign_in(session, username=username or "", password=password or "",
                              client=ui.client_key())
    if result.user_id is None:
        st.error(result.message)  # the library's own one-line text
    else:
        ui.signed_in(result.user_id, result.token)
        st.rerun()

providers = ui.sso_providers()
if providers:
    st.divider()
    for provider in providers:
        text = "Sign in with SSO" if provider is None else f"Sign in with {provider}"
        if st.button(text, key=f"sign_in_sso_{provider or 'default'}",
                     icon=":material/key:"):
            st.login(provider)
