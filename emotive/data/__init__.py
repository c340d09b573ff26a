"""emotive.data"""
