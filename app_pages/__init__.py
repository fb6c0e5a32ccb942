"""The reviewer app's screens (run through ``app.py``'s ``st.navigation``)."""
