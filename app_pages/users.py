"""Users screen (admins): add people, change their roles, sign them out, deactivate them."""

from __future__ import annotations

import streamlit as st

from app_pages import ui
from evidence import auth, crud, queries, review
from evidence.errors import SubstantiateError
from evidence.models import ROLES

user = ui.require_user()
ui.show_flash()
st.title("Users")

with ui.reading() as session:
    people = queries.users(session)

st.dataframe(people, hide_index=True)

with st.form("users_add", clear_on_submit=True):
    st.markdown("**Add a user**")
    cols = st.columns(3)
    username = cols[0].text_input("Username (or SSO e-mail)", key="users_username")
    role = cols[1].selectbox("Role", ROLES, index=1, key="users_role")
    password = cols[2].text_input("Password (8+ characters; empty: SSO only)",
                                  type="password", key="users_password")
    add = st.form_submit_button("Add user", type="primary", key="users_add_submit")
if add:
    try:
        with ui.writing() as session:
            added = review.add_user(session, actor=user, username=username or "",
                                    role=role or "viewer", password=password or None)
            name = added.username
    except SubstantiateError as e:
        ui.show_error(e)
    else:
        ui.flash("success", f"Added {ui.md_escape(name)}.")
        st.rerun()

if not people.empty:
    with st.form("users_role_form"):
        st.markdown("**Change a role**")
        names = dict(zip(people["user_id"], people["username"], strict=True))
        versions = dict(zip(people["user_id"], people["version"], strict=True))
        left, right = st.columns(2)
        target = left.selectbox("User", list(names), format_func=lambda u: names[u],
                                   key="users_target")
        new_role = right.selectbox("New role", ROLES, key="users_new_role")
        change = st.form_submit_button("Change role", key="users_role_submit")
    if change and target is not None and new_role is not None:
        try:
            with ui.writing() as session:
                review.set_role(session, actor=user, user_id=int(target), role=new_role,
                                expected_version=int(versions[target]))
        except SubstantiateError as e:
            ui.show_error(e)
        else:
            ui.flash("success", f"{ui.md_escape(names[target])} is now a {new_role}.")
            st.rerun()

if not people.empty:
    with st.form("users_access_form"):
        st.markdown("**Access**")
        names = dict(zip(people["user_id"], people["username"], strict=True))
        versions = dict(zip(people["user_id"], people["version"], strict=True))
        who = st.selectbox("User", list(names), format_func=lambda u: names[u],
                           key="users_access_target")
        cols = st.columns(3)
        everywhere = cols[0].form_submit_button("Sign out everywhere",
                                                key="users_sign_out_everywhere")
        deactivate = cols[1].form_submit_button("Deactivate", key="users_deactivate")
        reactivate = cols[2].form_submit_button("Reactivate", key="users_reactivate")
    if who is not None and (everywhere or deactivate or reactivate):
        name = ui.md_escape(names[who])
        try:
            with ui.writing() as session:
                if everywhere:
                    n = auth.sign_out_everywhere(session, actor=user, user_id=int(who))
                    message = f"Signed {name} out of {n} session{'s' if n != 1 else ''}."
                else:
                    crud.set_user_active(session=session, actor=user, user_id=int(who),
                                         active=bool(reactivate),
                                         expected_version=int(versions[who]))
                    message = f"{name} is {'active' if reactivate else 'deactivated'}."
        except SubstantiateError as e:
            ui.show_error(e)
        else:
            ui.flash("success", message)
            st.rerun()
