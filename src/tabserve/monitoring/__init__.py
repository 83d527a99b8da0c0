"""Monitoring: the prediction log (worker buffer -> spool -> shipper -> sink), drift, feedback, reports."""
