"""emotive.train"""
