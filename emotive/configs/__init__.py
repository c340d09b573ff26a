"""emotive.configs"""
