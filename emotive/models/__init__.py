"""emotive.models"""
